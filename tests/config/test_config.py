import pytest
import yaml

from detseg.config import ConfigError, ExperimentConfig, dump_config, load_config


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_values_and_defaults(tmp_path):
    path = write(tmp_path, "model:\n  backbone: {name: resnet50, out_features: [c3, c5]}\ntrain: {epochs: 3}\n")
    cfg = load_config(path)
    assert cfg.model.backbone.name == "resnet50"
    assert cfg.model.backbone.out_features == ("c3", "c5")
    assert cfg.train.epochs == 3
    assert cfg.train.lr == ExperimentConfig().train.lr


def test_overrides_are_typed_and_create_optional_sections(tmp_path):
    path = write(tmp_path, "train: {epochs: 3}\n")
    cfg = load_config(path, ["train.lr=1e-2", "train.epochs=5", "model.neck.out_channels=64"])
    assert cfg.train.lr == 0.01 and isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 5
    assert cfg.model.neck is not None and cfg.model.neck.out_channels == 64
    assert cfg.model.neck.in_features == ("c3", "c4", "c5")


def test_int_is_accepted_for_float(tmp_path):
    assert load_config(write(tmp_path, "train: {lr: 1}\n")).train.lr == 1.0


@pytest.mark.parametrize(
    "text, override, expected",
    [
        ("train: {epcohs: 3}\n", None, r"unknown key 'train.epcohs' in .*exp.yaml; did you mean 'epochs'"),
        ("trian: {epochs: 3}\n", None, r"unknown key 'trian' .*did you mean 'train'"),
        ("train: {epochs: three}\n", None, r"'train.epochs' in .*exp.yaml: expected int, got 'three'"),
        ("train: {epochs: 2.5}\n", None, r"'train.epochs'.*expected int"),
        ("model: {backbone: {out_features: c3}}\n", None, r"'model.backbone.out_features'.*expected a list"),
        ("train: {optimizer: adam}\n", None, r"'adam' is not one of \['sgd', 'adamw'\]; did you mean 'adamw'"),
        ("train: {epochs: 0}\n", None, r"'train'.*epochs must be >= 1"),
        ("model: {backbone: {pretrained: /no/such/weights.pth}}\n", None, r"'model.backbone.pretrained'.*file not found: /no/such/weights.pth"),
        ("model: {backbone: {out_features: [c3, c9]}}\n", None, r"\['c9'\] are not stage names"),
        ("model: {num_classes: 2, class_names: [a, b, c]}\n", None, r"class_names has 3 names for num_classes=2"),
        ("{}\n", "train.lr=fast", r"override 'train.lr=fast'.*expected float"),
        ("{}\n", "train.lrr=0.1", r"unknown key 'train.lrr' in command-line override.*did you mean 'lr'"),
        ("{}\n", "epochs", r"must look like key.sub=value"),
        ("train: {epochs: 3}\n", "train.epochs=0", r"'train' in .*exp.yaml with command-line override 'train.epochs=0'.*>= 1"),
        ("{}\n", "model.backbone.pretrained=/no/w.pth", r"'model.backbone.pretrained' in command-line override.*file not found"),
    ],
)
def test_bad_configs_name_key_and_source(tmp_path, text, override, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path, [override] if override else [])


def test_an_override_replaces_a_path_that_does_not_exist_here(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    path = write(tmp_path, "model: {backbone: {pretrained: /elsewhere/w.pth}}\n")
    with pytest.raises(ConfigError, match="exp.yaml: file not found: /elsewhere/w.pth"):
        load_config(path)
    assert load_config(path, [f"model.backbone.pretrained={weights}"]).model.backbone.pretrained == str(weights)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_config(write(tmp_path, "train: {epochs: [\n", "bad.yaml"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n", "list.yaml"))


def test_dump_round_trips(tmp_path):
    cfg = load_config(None, ["model.neck.extra_levels=pool", "model.backbone.out_features=[c2,c3]"])
    text = dump_config(cfg)
    assert "out_features: [c2, c3]" in text
    again = load_config(write(tmp_path, text, "resolved.yaml"))
    assert again == cfg
    assert yaml.safe_load(text)["model"]["neck"]["extra_levels"] == "pool"


def test_every_shipped_config_loads(repo, tmp_path, monkeypatch):
    # data paths are relative to the working directory: the repo's, plus the folders that
    # deeplab_masks.yaml's comment tells users to write
    (tmp_path / "shared").symlink_to(repo.parent / "shared")
    for split in ("train", "val"):
        for sub in ("images", "masks"):
            (tmp_path / "repo/data/shapes_masks" / split / sub).mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    paths = sorted((repo / "configs").rglob("*.yaml"))
    assert paths, "configs/ holds no config"
    for path in paths:
        load_config(path)
