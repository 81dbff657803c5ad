"""Kept so that batch scripts written before the move (`python -m mltui.core.supervisor`) still run."""

if __name__ == "__main__":
    from mltui.core.launch.supervisor import main

    raise SystemExit(main())
