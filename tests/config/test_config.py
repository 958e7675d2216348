import pytest
import yaml

from detseg.config import (
    ConfigError, ExperimentConfig, config_from_dict, dump_config, dump_used_config, load_config, to_dict, used_config,
)


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


def test_a_section_keeps_its_own_field_defaults(tmp_path):
    """``val: {...}`` lists what differs from data.val's default, whose split is "val" (not "train")."""
    cfg = load_config(write(tmp_path, "data: {format: voc, val: {root: .}, train: {root: .}}\n"))
    assert (cfg.data.train.split, cfg.data.val.split) == ("train", "val")
    rpn = load_config(None, ["model.two_stage.rpn.pre_nms_top_n={train: 600}"]).model.two_stage.rpn
    assert (rpn.pre_nms_top_n.train, rpn.pre_nms_top_n.test) == (600, 1000)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["data.format=coco", "data.image_size=32"],
         r"^data.image_size \(in command-line override 'data.image_size=32'\) does nothing for data.format=coco: "
         r"the model input size is data.augment.image_size$"),
        (["data.format=voc", "data.num_train=8"], "data.num_train .* does nothing for data.format=voc: "),
        (["data.format=yolo", "data.keep_difficult=false"], "only data.format=voc marks objects difficult"),
        (["data.format=coco", "data.class_names=[a, b]"], "data.class_names .* does nothing for data.format=coco"),
        (["data.format=voc", "data.train.images=."],
         "data.train.images .* data.format=voc reads data.train.root and data.train.split"),
        (["data.val.annotations=configs/yolo_coco.yaml"], "data.val.annotations .* data.format=shapes generates"),
        (["data.format=masks", "data.keep_empty=false"], "data.keep_empty .* does nothing for data.format=masks"),
    ],
)
def test_data_keys_the_format_does_not_read_are_errors(overrides, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(None, overrides)
    assert "\n" not in str(info.value)


def test_the_file_names_the_source_and_every_idle_key_is_listed(tmp_path):
    path = write(tmp_path, "data: {format: coco, image_size: 32, max_objects: 3}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"data.image_size (in {path}) does nothing for data.format=coco")
    assert "; data.max_objects (in " in message


def test_keys_a_format_override_made_idle_go_back_to_their_defaults(repo):
    """The tutorials point a shapes config at files: its synthetic-data keys served its own format."""
    cfg = load_config(repo / "configs/faster_rcnn_shapes.yaml", ["data.format=voc", "data.train.root=configs",
                                                                  "data.val.root=configs"])
    assert (cfg.data.image_size, cfg.data.max_objects) == (ExperimentConfig().data.image_size, 1)
    with pytest.raises(ConfigError, match="data.image_size .* does nothing for data.format=voc"):
        load_config(repo / "configs/faster_rcnn_shapes.yaml", ["data.format=voc", "data.image_size=96"])


def test_a_resolved_config_resets_its_idle_keys_but_checks_overrides():
    """A checkpoint's config from before this check may hold idle values: it still loads."""
    saved = to_dict(load_config(None, ["data.num_val=7"]))
    saved["data"]["format"] = "voc"
    cfg = config_from_dict(saved, ["data.train.root=.", "data.val.root=."], "the config in best.pt", resolved=True)
    assert cfg.data.num_val == ExperimentConfig().data.num_val
    with pytest.raises(ConfigError, match="data.num_val .* does nothing"):
        config_from_dict(saved, ["data.train.root=."], "the config in best.pt")
    with pytest.raises(ConfigError, match=r"data.image_size \(in command-line override"):
        config_from_dict(saved, ["data.image_size=9"], "the config in best.pt", resolved=True)


def test_printed_config_shows_only_what_the_run_reads(repo):
    unet = used_config(load_config(repo / "configs/unet_shapes.yaml"))
    assert set(unet["model"]) == {"arch", "num_classes", "class_names", "segmentation"}
    assert set(unet["model"]["segmentation"]) == {"unet", "loss"}
    assert set(unet["model"]["segmentation"]["unet"]) == {"base_channels", "depth", "use_bn"}
    assert {"image_size", "num_train", "max_objects"} <= set(unet["data"])
    assert not {"train", "val", "keep_difficult", "mask_values"} & set(unet["data"])  # class_names: shape kinds

    coco = used_config(load_config(repo / "configs/faster_rcnn_r50_fpn_coco.yaml"))
    assert set(coco["model"]["two_stage"]) == {"rpn", "roi_heads"} and coco["model"]["neck"]["extra_levels"] == "pool"
    assert not {"image_size", "num_train", "num_val", "max_objects", "seed", "class_names"} & set(coco["data"])
    assert set(coco["data"]["val"]) == {"images", "annotations"}
    assert {"momentum", "milestones", "gamma"} <= set(coco["train"])
    assert not {"power", "base_batch_size", "ema_warmup"} & set(coco["train"])

    yolo = used_config(load_config(repo / "configs/yolov1_shapes.yaml"))
    assert set(yolo["model"]["yolo"]) == {"v1"}
    assert {"score_thresh", "nms_iou", "max_det"} <= set(yolo["model"]["yolo"]["v1"])
    assert "momentum" not in yolo["train"]  # adamw

    cfg = load_config(repo / "configs/unet_shapes.yaml")
    text = dump_used_config(cfg)
    assert "two_stage" not in text and "yolo" not in text and "num_train: 1024" in text
    assert "two_stage:" in dump_config(cfg)  # config.yaml stays complete


def test_usage_tables_know_every_arch_and_format():
    from typing import get_args, get_type_hints

    from detseg.config.schema import DataConfig
    from detseg.config.usage import MODEL_PARTS, SPLIT_KEYS
    from detseg.data.build import READERS
    from detseg.models import MODELS

    assert set(MODEL_PARTS) == set(MODELS)
    assert set(SPLIT_KEYS) == set(get_args(get_type_hints(DataConfig)["format"])) == {"shapes", *READERS}
    for fmt, (required, _) in READERS.items():
        assert set(required) <= set(SPLIT_KEYS[fmt]), fmt
