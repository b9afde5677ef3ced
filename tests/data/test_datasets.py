import gc
import logging
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dagan.data.augmentation import ClipAugmentation
from dagan.data.datasets import ClipReader, FrameSequenceDataset, PairDataset, list_clips, sample_rng
from dagan.data.pairs import EvaluationPairs, FramePair, make_pairs
from dagan.errors import DaganError
from dagan.io.video import VideoWriter

SIZE = 32
NUM_FRAMES = 6


def _frame(k: int) -> np.ndarray:
    """Frame k is a flat grey of level 20 + 40k, so its index can be read back from its mean."""
    return np.full((SIZE, SIZE, 3), 20 + 40 * k, np.uint8)


def _index_of(image: torch.Tensor) -> int:
    return int(round((float(image.mean()) * 255 - 20) / 40))


def write_mp4(path: Path, n: int = NUM_FRAMES) -> None:
    with VideoWriter(path, 25, size=(SIZE, SIZE)) as w:
        for k in range(n):
            w.write(_frame(k))


def write_folder(path: Path, n: int = NUM_FRAMES, ext: str = "png") -> None:
    path.mkdir(parents=True)
    for k in range(n):
        Image.fromarray(_frame(k)).save(path / f"{k:07d}.{ext}")


def write_gif(path: Path, n: int = NUM_FRAMES) -> None:
    frames = [Image.fromarray(_frame(k)) for k in range(n)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """train: alice (mp4 + png folder), bob (mp4), carol (jpg folder); test: dave (mp4 + folder), erin (gif)."""
    root = tmp_path_factory.mktemp("vox")
    train, test = root / "train", root / "test"
    train.mkdir()
    test.mkdir()
    write_mp4(train / "alice#1.mp4")
    write_folder(train / "alice#2")
    write_mp4(train / "bob#1.mp4")
    write_folder(train / "carol#1.mp4", ext="jpg")  # frame folders may carry the video's name
    (train / "notes.txt").write_text("not a clip")
    (train / ".hidden#1.mp4").write_bytes(b"")
    write_mp4(test / "dave#1.mp4")
    write_folder(test / "dave#2")
    write_gif(test / "erin#1.gif")
    return root


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


# --- listing ---------------------------------------------------------------------------------


def test_list_clips_groups_by_identity(root):
    groups = list_clips(root, "train")
    assert list(groups) == ["alice", "bob", "carol"]
    assert [c.name for c in groups["alice"]] == ["alice#1.mp4", "alice#2"]
    assert [c.is_video for c in groups["alice"]] == [True, False]
    assert groups["carol"][0].is_video is False  # a folder, whatever its suffix
    assert [c.name for c in list_clips(root, "test")["erin"]] == ["erin#1.gif"]


def test_list_clips_errors(tmp_path, root):
    with pytest.raises(DaganError, match="dataset root not found.*nowhere"):
        list_clips(tmp_path / "nowhere", "train")
    with pytest.raises(DaganError, match=r"val.*not found.*train/ and test/|val.*not found"):
        list_clips(root, "val")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "readme.txt").write_text("")
    with pytest.raises(DaganError, match="no clips in dataset split .*train.*identity"):
        list_clips(tmp_path, "train")
    with pytest.raises(DaganError, match="not a folder"):
        list_clips(tmp_path / "train" / "readme.txt", "train")
    with pytest.raises(DaganError, match="no clips"):
        PairDataset(tmp_path, "train")


def test_reader_reads_one_frame_file_and_caches_videos(root, monkeypatch):
    clips = list_clips(root, "train")
    reader = ClipReader(cache_size=1)
    folder = clips["alice"][1]
    opened = []
    import dagan.data.datasets as ds

    real = ds.read_image
    monkeypatch.setattr(ds, "read_image", lambda p: opened.append(Path(p).name) or real(p))
    assert reader.num_frames(folder) == NUM_FRAMES
    assert _index_of(torch.from_numpy(reader.frame(folder, 4))) == 4
    assert opened == ["0000004.png"]
    video = clips["alice"][0]
    first = reader._video(video)
    assert reader._video(video) is first  # cached
    reader.num_frames(clips["bob"][0])  # evicts alice#1 (cache of one clip)
    assert reader._video(video) is not first


# --- PairDataset -----------------------------------------------------------------------------


def test_pair_dataset_length(root):
    assert len(PairDataset(root, id_sampling=True, num_repeats=2)) == 3 * 2
    assert len(PairDataset(root, id_sampling=False)) == 4
    assert len(PairDataset(root, "test", id_sampling=True, num_repeats=5)) == 2 * 5


def test_pair_dataset_items(root):
    ds = PairDataset(root, image_size=SIZE, augment=False, id_sampling=False)
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {"source", "driving", "name"}
        for key in ("source", "driving"):
            assert item[key].shape == (3, SIZE, SIZE) and item[key].dtype == torch.float32
            assert 0 <= item[key].min() and item[key].max() <= 1
        assert item["name"] == ds.clips[i].name
        # sorted: the source is never later than the driving frame
        assert _index_of(item["source"]) <= _index_of(item["driving"])
    with pytest.raises(IndexError):
        ds[len(ds)]
    _assert_same(ds[-1], ds[len(ds) - 1])


def test_pair_dataset_resizes(root):
    item = PairDataset(root, image_size=16, augment=True)[0]
    assert item["source"].shape == (3, 16, 16) and item["driving"].shape == (3, 16, 16)
    assert 0 <= item["source"].min() and item["source"].max() <= 1


def test_pair_dataset_frame_indices_cover_clip_with_replacement(root):
    ds = PairDataset(root, augment=False, id_sampling=False, image_size=SIZE)
    seen, equal = set(), 0
    for epoch in range(60):
        item = ds[(epoch, 1)]  # alice#2, a frame folder
        s, d = _index_of(item["source"]), _index_of(item["driving"])
        seen.update((s, d))
        equal += s == d
    assert seen == set(range(NUM_FRAMES))
    assert equal > 0  # drawn with replacement


def test_determinism_across_instances_and_access_order(root):
    a = PairDataset(root, num_repeats=2, seed=5, image_size=SIZE)
    b = PairDataset(root, num_repeats=2, seed=5, image_size=SIZE)
    a.set_epoch(3)
    b.set_epoch(3)
    first = [a[i] for i in range(len(a))]
    for i in reversed(range(len(b))):
        _assert_same(b[i], first[i])
    # an explicit (epoch, index) is the same as set_epoch + index
    c = PairDataset(root, num_repeats=2, seed=5, image_size=SIZE)
    _assert_same(c[(3, 2)], first[2])
    # a pickled copy (a spawned worker) gives the same samples; the decoded-clip cache stays behind
    copy = pickle.loads(pickle.dumps(a))
    assert len(copy.reader._videos) == 0
    _assert_same(copy[1], first[1])


def test_epochs_and_seeds_change_samples(root):
    ds = PairDataset(root, num_repeats=2, image_size=SIZE)
    base = [ds[(0, i)] for i in range(len(ds))]

    def differs(items):
        return sum(not torch.equal(x["source"], y["source"]) or not torch.equal(x["driving"], y["driving"])
                   for x, y in zip(items, base))

    assert differs([ds[(1, i)] for i in range(len(ds))]) >= len(ds) - 1
    other_seed = PairDataset(root, num_repeats=2, seed=1, image_size=SIZE)
    assert differs([other_seed[(0, i)] for i in range(len(ds))]) >= len(ds) - 1


def test_id_sampling_picks_identity_then_random_clip(root):
    ds = PairDataset(root, num_repeats=2, augment=False, image_size=SIZE)
    names = set()
    for epoch in range(20):
        for i in range(len(ds)):
            name = ds[(epoch, i)]["name"]
            assert name.split("#")[0] == ds.identities[i % 3]
            names.add(name)
    assert {"alice#1.mp4", "alice#2"} <= names


def test_reading_a_video_leaves_nothing_that_deadlocks_a_fork(root):
    # PyAV frames left in reference cycles by decoding hang a forked child that garbage-collects
    # them (the DataLoader workers); the reader frees them in the main process.
    gc.collect()
    gc.disable()  # no automatic collection may clean up before the fork
    try:
        ds = PairDataset(root, id_sampling=False, image_size=SIZE)
        assert ds[0]["name"] == "alice#1.mp4"  # decodes a video
        pid = os.fork()
        if pid == 0:  # child: must be able to collect and exit promptly
            signal.alarm(10)
            gc.collect()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
    finally:
        gc.enable()
    assert os.waitstatus_to_exitcode(status) == 0


def test_dataloader_workers_match_direct_access(root):
    ds = PairDataset(root, num_repeats=2, seed=2, image_size=SIZE)
    ds.set_epoch(4)
    gc.collect()  # frames other tests may have left behind (see the test above)
    loader = DataLoader(ds, batch_size=1, num_workers=2, shuffle=False, timeout=60)
    for i, batch in enumerate(loader):
        item = ds[i]
        assert torch.equal(batch["source"][0], item["source"])
        assert torch.equal(batch["driving"][0], item["driving"])
        assert batch["name"] == [item["name"]]


def test_sample_rng_keys():
    assert sample_rng(0, 1, 2).random() == sample_rng(0, 1, 2).random()
    assert sample_rng(0, 1, 2).random() != sample_rng(0, 2, 1).random()
    with pytest.raises(ValueError):
        sample_rng(0, -1, 0)


# --- bad data --------------------------------------------------------------------------------


def _corrupt(path: Path, seed: int = 0) -> None:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 4000, dtype=np.uint8).tobytes())


def test_corrupt_clip_is_skipped_and_logged(tmp_path, caplog):
    (tmp_path / "train").mkdir()
    write_mp4(tmp_path / "train" / "a#1.mp4")
    write_folder(tmp_path / "train" / "b#1")
    _corrupt(tmp_path / "train" / "x#1.mp4")
    fresh = PairDataset(tmp_path, augment=False, image_size=SIZE)
    assert fresh.identities == ["a", "b", "x"]
    with caplog.at_level(logging.WARNING, logger="dagan.data"):
        item = fresh[2]  # identity x: its only clip is corrupt, so another clip is drawn
    assert item["name"] in {"a#1.mp4", "b#1"}
    records = [r for r in caplog.records if r.name == "dagan.data"]
    assert len(records) == 1 and "x#1.mp4" in records[0].getMessage()
    # a process that already knows the clip is bad gives exactly the same sample
    caplog.clear()
    _assert_same(fresh[2], item)
    assert not caplog.records  # logged once per process
    other = PairDataset(tmp_path, augment=False, image_size=SIZE)
    _assert_same(other[2], item)


def test_corrupt_frame_file_is_skipped(tmp_path, caplog):
    write_folder(tmp_path / "train" / "a#1", n=3)
    (tmp_path / "train" / "a#1" / "0000001.png").write_bytes(b"not a png")
    ds = FrameSequenceDataset(tmp_path, augment=False, image_size=SIZE, frame_offsets=(0,))
    with caplog.at_level(logging.WARNING, logger="dagan.data"):
        seen = {int(ds[(e, 0)]["indices"][0]) for e in range(30)}
    assert seen == {0, 2}
    assert any("0000001.png" in r.getMessage() for r in caplog.records if r.name == "dagan.data")


def test_all_clips_corrupt_is_an_error(tmp_path):
    (tmp_path / "train").mkdir()
    _corrupt(tmp_path / "train" / "x#1.mp4", 0)
    _corrupt(tmp_path / "train" / "y#1.mp4", 1)
    (tmp_path / "train" / "z#1").mkdir()  # an empty frame folder
    ds = PairDataset(tmp_path, image_size=SIZE)
    with pytest.raises(DaganError, match="every clip .* unreadable"):
        ds[0]
    with pytest.raises(DaganError, match="unreadable"):
        make_pairs(tmp_path, "train", num_pairs=3)


# --- FrameSequenceDataset --------------------------------------------------------------------


def test_frame_sequence_items(root):
    ds = FrameSequenceDataset(root, image_size=SIZE, augment=False)
    assert len(ds) == 4
    for epoch in range(5):
        for i in range(len(ds)):
            item = ds[(epoch, i)]
            assert item["frames"].shape == (3, 3, SIZE, SIZE) and item["frames"].dtype == torch.float32
            assert torch.equal(item["frames"], item["frames_aug"])
            c = int(item["indices"][0])
            assert item["indices"].tolist() == [c, c - 1, c + 1] and 1 <= c <= NUM_FRAMES - 2
            assert [_index_of(f) for f in item["frames"]] == item["indices"].tolist()


def test_frame_sequence_clamps_short_clips(tmp_path):
    write_folder(tmp_path / "train" / "a#1", n=2)
    ds = FrameSequenceDataset(tmp_path, image_size=SIZE, augment=False, frame_offsets=(0, -2, 2))
    got = {tuple(ds[(e, 0)]["indices"].tolist()) for e in range(20)}
    assert got == {(0, 0, 1), (1, 0, 1)}


def test_frame_sequence_augmentation(root):
    ds = FrameSequenceDataset(root, image_size=SIZE, augment=True, num_repeats=4, seed=3)
    plain = FrameSequenceDataset(root, image_size=SIZE, augment=False, num_repeats=4, seed=3)
    jitters = 0
    for i in range(len(ds)):
        item, ref = ds[i], plain[i]
        _assert_same(item, ds[i])
        assert item["frames_aug"].shape == (3, 3, SIZE, SIZE)
        assert item["indices"].tolist() == ref["indices"].tolist()  # augmentation draws after frames
        # frames are flat grey, so a flip is invisible here (flips are counted on a ramp below); the
        # un-jittered frames equal the plain dataset's
        assert torch.equal(item["frames"], ref["frames"])
        jitters += not torch.equal(item["frames_aug"], item["frames"])
    assert 0 < jitters < len(ds)


def _write_ramp_clip(root: Path, n: int = 4) -> None:
    """train/a#1: n frames of a left-right ramp, so that a flip shows (colour jitter keeps its order)."""
    folder = root / "train" / "a#1"
    folder.mkdir(parents=True)
    ramp = np.tile(np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :, None], (SIZE, 1, 3))
    for k in range(n):
        Image.fromarray(ramp).save(folder / f"{k}.png")


def test_frame_sequence_flip_applies_to_all_frames(tmp_path):
    _write_ramp_clip(tmp_path)
    aug = ClipAugmentation(time_flip_prob=0.0, hflip_prob=1.0, brightness=0, contrast=0, saturation=0, hue=0)
    item = FrameSequenceDataset(tmp_path, image_size=SIZE, augment=aug)[0]
    assert all(f[0, 0, 0] > f[0, 0, -1] for f in item["frames"])
    assert torch.equal(item["frames"], item["frames_aug"])


def test_frame_sequence_default_augmentation_flips_some_samples(tmp_path):
    """depth_augmentation() flips with p = 0.5: some samples and not others, all frames of a sample alike."""
    _write_ramp_clip(tmp_path)
    ds = FrameSequenceDataset(tmp_path, image_size=SIZE, augment=True, num_repeats=16, seed=3)
    flipped = []
    for i in range(len(ds)):
        frames = ds[i]["frames_aug"]
        kinds = {bool(f[0, 0, 0] > f[0, 0, -1]) for f in frames}
        assert len(kinds) == 1, f"sample {i}: some frames flipped, others not"
        flipped.append(kinds.pop())
    assert 0 < sum(flipped) < len(ds), f"{sum(flipped)} of {len(ds)} samples flipped"


# --- evaluation pairs ------------------------------------------------------------------------


def test_make_pairs_is_reproducible_and_same_identity(root):
    a = make_pairs(root, num_pairs=20, seed=0)
    b = make_pairs(root, num_pairs=20, seed=0)
    c = make_pairs(root, num_pairs=20, seed=1)
    assert len(a) == 20 and a == b and a != c
    for pair in a.pairs:
        src, drv = pair.source.split("/"), pair.driving.split("/")
        assert src[0] == "test" and src[1] == drv[1]  # same clip, hence same identity
        assert src[2] != drv[2]
    cross = make_pairs(root, num_pairs=20, seed=0, same_clip=False)
    assert all(p.source.split("/")[1].split("#")[0] == p.driving.split("/")[1].split("#")[0] for p in cross.pairs)
    assert any(p.source.split("/")[1] != p.driving.split("/")[1] for p in cross.pairs)


def test_pairs_csv_round_trip_and_loading(root, tmp_path):
    pairs = make_pairs(root, num_pairs=12, seed=4)
    path = tmp_path / "pairs.csv"
    pairs.write_csv(path)
    assert path.read_text().splitlines()[0] == "source,driving,frame"
    back = EvaluationPairs.read_csv(path, root)
    assert back == pairs
    for i in range(len(back)):
        item = back[i]
        assert item["source"].shape == (3, SIZE, SIZE) and item["driving"].shape == (3, SIZE, SIZE)
        assert _index_of(item["source"]) == int(Path(item["path_source"]).stem)
        assert _index_of(item["driving"]) == int(Path(item["path_driving"]).stem)
    assert EvaluationPairs.read_csv(path, root, image_size=16)[0]["source"].shape == (3, 16, 16)


def test_reads_the_original_csv_format(root, tmp_path):
    original = (
        "source,driving,frame\n"
        "/data/fhongac/origDataset/vox1_frames/test/dave#2/0000001.png,"
        "/data/fhongac/origDataset/vox1_frames/test/dave#2/0000004.png\n"
        f"{root}/test/dave#1.mp4/0000002.png,test/erin#1.gif/0000005.png,\n"
    )
    path = tmp_path / "vox_evaluation.csv"
    path.write_text(original)
    pairs = EvaluationPairs.read_csv(path, root)
    assert pairs.pairs == (
        FramePair("test/dave#2/0000001.png", "test/dave#2/0000004.png"),
        FramePair("test/dave#1.mp4/0000002.png", "test/erin#1.gif/0000005.png"),
    )
    assert [_index_of(pairs[1][k]) for k in ("source", "driving")] == [2, 5]


def test_pair_csv_errors(root, tmp_path):
    with pytest.raises(DaganError, match="not found"):
        EvaluationPairs.read_csv(tmp_path / "missing.csv", root)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\nx,y\n")
    with pytest.raises(DaganError, match="'source' and 'driving'"):
        EvaluationPairs.read_csv(bad, root)
    bad.write_text("source,driving\n/elsewhere/img.png,/elsewhere/img2.png\n")
    with pytest.raises(DaganError, match="cannot make .* relative"):
        EvaluationPairs.read_csv(bad, root)
    pairs = EvaluationPairs(root, [FramePair("test/dave#2/0009999.png", "test/dave#2/0000001.png")])
    with pytest.raises(DaganError, match="not found"):
        pairs[0]
    with pytest.raises(DaganError, match="does not exist"):
        pairs.write_csv(tmp_path / "no" / "pairs.csv")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
