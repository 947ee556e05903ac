import yaml

from pipelines.configs import CONFIGS, trainer_args
from speechrnn.cli import run_lightning


def test_the_spotter_recipe_keeps_the_epoch_with_the_most_detections_at_one_false_alarm_per_hour(tmp_path):
    stream = {"class_path": "speechrnn.corpora.streams.StreamDataModule", "init_args": {
        "keywords": {"class_path": "tones.ToneDataModule", "init_args": {
            "data_root": str(tmp_path / "keywords"), "cache_dir": str(tmp_path / "cache")}},
        "fillers": {"class_path": "tones.ToneDataModule", "init_args": {
            "num_classes": 5, "data_root": str(tmp_path / "fillers")}},
        "filler_words": ["3", "4"], "window_s": [0.5, 1.0], "keyword_free_s": 20.0, "batch_size": 8}}
    (tmp_path / "stream.yaml").write_text(yaml.safe_dump({"data": stream}))
    cli = run_lightning(["fit", "--config", str(tmp_path / "stream.yaml"), "--config", str(CONFIGS / "model/gru.yaml"),
                         *trainer_args(CONFIGS / "trainer/cpu.yaml"),
                         "--config", str(CONFIGS / "experiment/streaming.yaml"),
                         "--run_dir", str(tmp_path / "run"), "--trainer.max_epochs", "2", "--trainer.logger", "false",
                         "--trainer.enable_progress_bar", "false", "--model.hidden_size", "8", "--test_after_fit", "false"])
    figure = float(cli.trainer.callback_metrics["val/det_at_1fa"])
    assert 0.0 <= figure <= 1.0
    best = cli.trainer.checkpoint_callback
    assert best.monitor == "val/det_at_1fa" and float(best.best_model_score) >= figure
    assert cli.trainer.early_stopping_callback.monitor == "val/det_at_1fa"
