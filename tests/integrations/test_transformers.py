"""MltuiCallback under a real Hugging Face Trainer: a randomly initialised tiny BERT built from a config, a
dataset of tensors made in the script, CPU, no downloads (HF_HUB_OFFLINE)."""

from __future__ import annotations

import hashlib
import json

from conftest import run_script  # noqa: E402  (tests/integrations/conftest.py)

TRAIN = """\
import json, sys, torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments
from mltui.integrations.transformers import MltuiCallback

class Data(torch.utils.data.Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(n)
        self.ids = torch.randint(0, 50, (n, 8), generator=g)
        self.labels = (self.ids[:, 0] > 25).long()
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(8, dtype=torch.long), "labels": self.labels[i]}

class Diverge(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if FAIL_AT and state.global_step == FAIL_AT:
            raise FloatingPointError("loss is nan")

FAIL_AT = int(sys.argv[1]) if len(sys.argv) > 1 else 0
torch.manual_seed(0)
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                    max_position_embeddings=16, num_labels=2)
args = TrainingArguments(output_dir="out", max_steps=6, per_device_train_batch_size=4, logging_steps=2,
                         save_strategy="steps", save_steps=3, eval_strategy="steps", eval_steps=3,
                         per_device_eval_batch_size=8, learning_rate=1e-3, report_to="none", use_cpu=True,
                         disable_tqdm=True, run_name="tiny-bert")
callback = MltuiCallback()
trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Data(24),
                  eval_dataset=Data(8), callbacks=[callback, Diverge()])
trainer.train()
print(json.dumps({"history": [{k: v for k, v in e.items() if isinstance(v, (int, float))} for e in trainer.state.log_history]}))
"""


def test_trainer_gives_params_curves_checkpoints_and_a_finished_run(ws, store, tmp_path):
    done = run_script(tmp_path, TRAIN)
    history = json.loads(done.stdout.strip().splitlines()[-1])["history"]
    [run] = store.runs()
    assert run["name"] == "tiny-bert" and run["status"] == "finished"
    params = store.params(run["id"])
    assert params["learning_rate"] == 0.001 and params["max_steps"] == 6 and params["per_device_train_batch_size"] == 4
    assert params["model.hidden_size"] == 16 and params["model.model_type"] == "bert"
    assert params["model.num_hidden_layers"] == 1
    # every number the Trainer logged, at the global step it logged it
    want: dict[str, dict] = {}
    for entry in history:
        for key, value in entry.items():
            if key not in ("step", "total_flos"):
                want.setdefault(key, {})[entry["step"]] = value  # a step logged twice (epoch): the later value
    for key, points in want.items():
        assert [(s, v) for s, v, _ in store.series(run["id"], key)] == sorted(points.items()), key
    assert [s for s, _, _ in store.series(run["id"], "loss")] == [2, 4, 6]
    assert [s for s, _, _ in store.series(run["id"], "eval_loss")] == [3, 6]
    arts = store.artifacts(run["id"])
    for step in (3, 6):
        folder = tmp_path / "out" / f"checkpoint-{step}"
        for file in folder.iterdir():
            row = arts[f"artifacts/checkpoints/checkpoint-{step}/{file.name}"]
            assert row["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert any(p.endswith("checkpoint-6/model.safetensors") for p in arts)


def test_a_training_that_raises_ends_failed(ws, store, tmp_path):
    (tmp_path / "fail").mkdir()
    done = run_script(tmp_path / "fail", TRAIN.replace("FAIL_AT = int(sys.argv[1]) if len(sys.argv) > 1 else 0",
                                                       "FAIL_AT = 4"), check=False)
    assert done.returncode == 1 and "FloatingPointError: loss is nan" in done.stderr
    [run] = store.runs()
    assert run["status"] == "failed"
    assert [s for s, _, _ in store.series(run["id"], "loss")] == [2]  # the step-4 log never came
    assert any("checkpoint-3" in p for p in store.artifacts(run["id"]))
