"""Launching and supervising commands: start, stop, the supervisor, the queue, liveness (lost runs), Slurm."""
