"""Real video datasets: folder, CSV manifest, UCF-101 and HMDB-51 layouts, one clip sampler.

    layout --list--> [(path, label)] --probe--> usable videos (+ skipped, with reasons)
    item i -> video i // K, clip i % K --sample--> frame indices --decode--> resize + crop -> uint8 [T, C, H, W]

Labels come from the layout's full class list (sorted folder names, classInd.txt, ...), never from
the videos that survived, so a skipped video can never shift another video's label.
"""
from __future__ import annotations

import csv
import math
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fusion_models.clip import ClipSpec

from .decode import decode, probe, resolve_decoder
from .sampling import clip_indices, min_video_frames
from .spec import DatasetSpec

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class VideoEntry:
    """One listed video."""

    path: str
    label: int


class NoUsableVideos(ValueError):
    """Nothing readable is left in a split; the message names the skipped videos."""


class DecodeError(RuntimeError):
    """A listed video that probed fine failed while its frames were decoded (cut or corrupt mid-stream)."""


def _hash_split(rel: str) -> str:
    # Layouts without split files: a stable 80/20 split by path, the same on every machine.
    return "train" if zlib.crc32(rel.encode()) % 5 else "val"


def _natural(names: set[str]) -> list[str]:
    return sorted(names, key=lambda n: (0, int(n), "") if n.isdigit() else (1, 0, n))


def list_folder(root: Path, split: str) -> tuple[list[VideoEntry], list[str], list[tuple[str, str]]]:
    """``root/<class>/<video>.{mp4,avi,mkv,webm}``; ``root/{train,val,test}/<class>/...`` when present,
    else a stable 80/20 split by path (val and test are the same 20 %)."""
    skipped: list[tuple[str, str]] = []
    if (root / "train").is_dir() and any((root / s).is_dir() for s in ("val", "test")):
        base = root / split if (root / split).is_dir() else root / ("test" if split == "val" else "val")
        class_dirs = {d.name for s in ("train", "val", "test") if (root / s).is_dir()
                      for d in (root / s).iterdir() if d.is_dir()}
        by_split = False
    else:
        base = root
        class_dirs = {d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
        by_split = True
    classes = sorted(class_dirs)
    if not classes:
        raise NoUsableVideos(f"{root}: no class folders; expected root/<class>/<video>.{{mp4,avi,mkv,webm}}, "
                             "a .csv manifest, or --dataset ucf101 / hmdb51")
    entries = []
    for label, name in enumerate(classes):
        folder = base / name
        listed = sorted(f for f in folder.iterdir() if not f.name.startswith(".")) if folder.is_dir() else []
        files = [f for f in listed if f.is_file()]
        videos = [f for f in files if f.suffix.lower() in VIDEO_EXTENSIONS]
        skipped += [(str(f), f"unknown extension {f.suffix or '(none)'}") for f in files if f not in videos]
        skipped += [(str(f), "broken symlink" if f.is_symlink() and not f.exists() else "not a regular file")
                    for f in listed if f.suffix.lower() in VIDEO_EXTENSIONS and not f.is_file()]
        if not videos and folder.is_dir():
            skipped.append((str(folder), "empty class folder (no video files)"))
        for f in videos:
            if not by_split or _hash_split(f"{name}/{f.name}") == ("train" if split == "train" else "val"):
                entries.append(VideoEntry(str(f), label))
    return entries, classes, skipped


def list_csv(path: Path, split: str) -> tuple[list[VideoEntry], list[str], list[tuple[str, str]]]:
    """A manifest with a header ``path,label[,split]``; paths relative to the CSV's folder."""
    rows = list(csv.DictReader(_read_text(path).splitlines()))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a CSV header with columns path,label[,split]")
    empty = [n for n, r in enumerate(rows, 2) if not (r.get("label") or "").strip() or not (r.get("path") or "").strip()]
    if empty:
        raise ValueError(f"{path}: line {empty[0]} has an empty path or label"
                         + (f" ({len(empty)} such lines)" if len(empty) > 1 else ""))
    classes = _natural({r["label"].strip() for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    has_split = "split" in rows[0] and any((r.get("split") or "").strip() for r in rows)
    want = split if has_split else ("train" if split == "train" else "val")
    entries, skipped = [], []
    for r in rows:
        rel = r["path"].strip()
        if ((r.get("split") or "").strip().lower() if has_split else _hash_split(rel)) != want:
            continue
        f = (path.parent / rel) if not Path(rel).is_absolute() else Path(rel)
        if f.suffix.lower() not in VIDEO_EXTENSIONS:
            skipped.append((str(f), f"unknown extension {f.suffix or '(none)'}"))
        else:
            entries.append(VideoEntry(str(f), index[r["label"].strip()]))
    return entries, classes, skipped


def _read_text(path: Path) -> str:
    """A split/class/manifest file as text; a file that is not UTF-8 text is named in the error."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _first_dir(root: Path, names: tuple[str, ...]) -> Path:
    return next((root / n for n in names if (root / n).is_dir()), root)


def list_ucf101(root: Path, split: str, split_id: int) -> tuple[list[VideoEntry], list[str], list[tuple[str, str]]]:
    """UCF-101: ``ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt`` and ``UCF-101/<Class>/*.avi``
    (both folders may also sit directly in ``root``); val and test are the official test list."""
    lists = _first_dir(root, ("ucfTrainTestlist", "splits"))
    videos = _first_dir(root, ("UCF-101", "UCF101", "videos"))
    class_ind = lists / "classInd.txt"
    split_file = lists / (f"trainlist{split_id:02d}.txt" if split == "train" else f"testlist{split_id:02d}.txt")
    for f in (class_ind, split_file):
        if not f.is_file():
            raise FileNotFoundError(f"UCF-101 layout: {f} not found (expected ucfTrainTestlist/ with classInd.txt, "
                                    f"trainlist0N.txt and testlist0N.txt under {root})")
    try:
        classes = [line.split()[1] for line in _read_text(class_ind).splitlines() if line.strip()]
    except IndexError:
        raise ValueError(f"{class_ind}: expected lines 'INDEX CLASS'") from None
    index = {c.lower(): i for i, c in enumerate(classes)}
    entries, skipped = [], []
    for line in _read_text(split_file).splitlines():
        if not line.strip():
            continue
        rel = line.split()[0].replace("\\", "/")
        cls = rel.split("/")[0].lower()
        f = videos / rel
        if cls not in index:
            skipped.append((str(f), f"class {rel.split('/')[0]!r} not in classInd.txt"))
        elif not f.is_file():
            skipped.append((str(f), f"listed in {split_file.name} but missing"))
        else:
            entries.append(VideoEntry(str(f), index[cls]))
    return entries, classes, skipped


def list_hmdb51(root: Path, split: str, split_id: int) -> tuple[list[VideoEntry], list[str], list[tuple[str, str]]]:
    """HMDB-51: ``<class>_test_split<N>.txt`` files (1 = train, 2 = test, 0 = unused) anywhere under
    ``root`` and videos in ``<class>/`` (or ``videos/<class>/``); val and test are the test set."""
    split_files = sorted(root.rglob(f"*_test_split{split_id}.txt"))
    if not split_files:
        raise FileNotFoundError(f"HMDB-51 layout: no *_test_split{split_id}.txt under {root}")
    suffix = f"_test_split{split_id}.txt"
    pairs = sorted((f.name[: -len(suffix)], f) for f in split_files)
    classes = [name for name, _ in pairs]
    videos = _first_dir(root, ("videos", "hmdb51"))
    wanted = "1" if split == "train" else "2"
    entries, skipped = [], []
    for label, (name, sf) in enumerate(pairs):
        for line in _read_text(sf).splitlines():
            parts = line.split()
            if len(parts) != 2 or parts[1] != wanted:
                continue
            f = videos / name / parts[0]
            if f.is_file():
                entries.append(VideoEntry(str(f), label))
            else:
                skipped.append((str(f), f"listed in {sf.name} but missing"))
    return entries, classes, skipped


def list_videos(spec: DatasetSpec, split: str) -> tuple[list[VideoEntry], list[str], list[tuple[str, str]]]:
    """``(entries, class_names, skipped)`` of ``split`` for a real-video spec."""
    root = Path(spec.root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset root {root} does not exist")
    if spec.name == "ucf101":
        return list_ucf101(root, split, spec.split_id)
    if spec.name == "hmdb51":
        return list_hmdb51(root, split, spec.split_id)
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise ValueError(f"folder dataset root {root} is a file but not a .csv manifest")
        return list_csv(root, split)
    if (root / "manifest.csv").is_file():
        return list_csv(root / "manifest.csv", split)
    return list_folder(root, split)


def resize_crop(frames: np.ndarray, clip: ClipSpec, ratio: float, rng: np.random.Generator | None,
                hflip: bool = False) -> torch.Tensor:
    """uint8 ``[T, H0, W0, 3]`` -> uint8 ``[T, C, H, W]``: short side to ``ratio * max(H, W)``, then a
    random (``rng``) or centre crop, and a random horizontal flip when ``hflip``."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    h0, w0 = x.shape[-2:]
    scale = math.ceil(ratio * max(clip.height, clip.width)) / min(h0, w0)
    size = (max(clip.height, round(h0 * scale)), max(clip.width, round(w0 * scale)))
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    dy, dx = size[0] - clip.height, size[1] - clip.width
    oy, ox = (int(rng.integers(dy + 1)), int(rng.integers(dx + 1))) if rng is not None else (dy // 2, dx // 2)
    x = x[:, :, oy: oy + clip.height, ox: ox + clip.width]
    if hflip and rng is not None and rng.random() < 0.5:
        x = x.flip(-1)
    if clip.channels == 1:
        x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    return x.round_().clamp_(0, 255).to(torch.uint8)


class VideoClips(torch.utils.data.Dataset):
    """Clips of real videos: ``ds[i] -> (clip float32 [T, C, H, W] in [0, 1], label int)``.

    Training has one item per video (a random clip each epoch); val/test have ``clips_per_video``
    evenly spaced clips per video, and ``video_index[i]`` says which video item ``i`` came from.
    """

    def __init__(self, spec: DatasetSpec, clip: ClipSpec, *, split: str = "train", seed: int = 0) -> None:
        if clip.channels not in (1, 3):
            raise ValueError(f"video datasets give 1 or 3 channels, ClipSpec has {clip.channels}")
        self.spec, self.clip, self.split, self.seed = spec, clip, split, seed
        self.decoder = resolve_decoder(spec.decoder)
        entries, self.class_names, skipped = list_videos(spec, split)
        self.num_classes = len(self.class_names)
        self.class_attributes: list[dict[str, str]] = [{} for _ in self.class_names]
        need = min_video_frames(clip.frames, spec.frame_stride, spec.sampling)
        self.videos: list[VideoEntry] = []
        self.num_frames: list[int] = []
        for e in entries:
            try:
                info = probe(e.path, self.decoder)
            except Exception as exc:  # corrupt, zero-byte, not a video: skip it and say why
                msg = str(exc).splitlines()[0] if str(exc) else ""
                skipped.append((e.path, f"unreadable ({type(exc).__name__}: {msg})"[:200]))
                continue
            if info.num_frames < need:
                skipped.append((e.path, f"too short: {info.num_frames} frames, a clip needs {need}"))
                continue
            self.videos.append(e)
            self.num_frames.append(info.num_frames)
        self.skipped = skipped
        self.failed: set[int] = set()  # videos that failed mid-decode: skipped from then on
        total = len(entries) + sum(1 for p, r in skipped if "unknown extension" in r or "missing" in r)
        if skipped:
            shown = "; ".join(f"{p} ({r})" for p, r in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
            warnings.warn(f"{spec.name} {split}: skipped {len(skipped)} item(s) of {total}: {shown}", stacklevel=2)
        if not self.videos:
            raise NoUsableVideos(f"{spec.name} {split}: no usable videos under {spec.root} "
                                 f"({len(skipped)} skipped{': ' + skipped[0][0] + ' (' + skipped[0][1] + ')' if skipped else ''})")
        self.train = split == "train"
        self.clips_per_video = 1 if self.train else spec.clips_per_video
        self.video_index = [v for v in range(len(self.videos)) for _ in range(self.clips_per_video)]

    def __len__(self) -> int:
        return len(self.videos) * self.clips_per_video

    def label(self, index: int) -> int:
        """Label of item ``index`` without decoding."""
        return self.videos[index // self.clips_per_video].label

    def clip_uint8(self, index: int, epoch: int = 0) -> torch.Tensor:
        """Item ``index`` as uint8 ``[T, C, H, W]``; training augmentation is drawn from (seed, index, epoch)."""
        v, k = divmod(index, self.clips_per_video)
        rng = np.random.default_rng([self.seed, _SPLIT_CODE[self.split], index, epoch]) if self.train else None
        idx = clip_indices(self.num_frames[v], self.clip.frames, sampling=self.spec.sampling,
                           stride=self.spec.frame_stride, train=self.train, rng=rng, k=k, clips=self.clips_per_video)
        try:
            frames = decode(self.videos[v].path, idx, self.decoder)
        except Exception as exc:
            raise DecodeError(f"decoding {self.videos[v].path} with {self.decoder} failed: {exc}") from exc
        out = resize_crop(frames, self.clip, self.spec.resize_ratio, rng, self.spec.hflip)
        if self.spec.time_reverse and rng is not None and rng.random() < 0.5:
            out = out.flip(0)
        return out

    def batch_uint8(self, keys: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clips uint8 [B, T, C, H, W], labels int64 [B])`` for ``(index, epoch)`` keys (see ``batch_kept``)."""
        return self.batch_kept(keys)[:2]

    def batch_kept(self, keys: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """``(clips, labels, kept keys)``: a video that fails mid-decode is skipped and named (in ``skipped``,
        and a warning) like the other bad files, and its clips are left out of this and every later batch."""
        clips, kept = [], []
        for i, e in keys:
            v = i // self.clips_per_video
            if v in self.failed:
                continue
            try:
                clips.append(self.clip_uint8(i, e))
                kept.append((i, e))
            except DecodeError as exc:
                self.failed.add(v)
                why = str(exc.__cause__ or exc).splitlines()[0] if str(exc.__cause__ or exc) else type(exc).__name__
                self.skipped.append((self.videos[v].path, f"failed mid-decode ({why})"[:200]))
                warnings.warn(f"{self.spec.name} {self.split}: skipped {self.videos[v].path}: failed mid-decode "
                              f"({why})", stacklevel=2)
        if not clips:
            raise NoUsableVideos(f"{self.spec.name} {self.split}: every clip of a batch failed to decode "
                                 f"(last: {self.skipped[-1][0]})")
        return (torch.stack(clips), torch.tensor([self.label(i) for i, _ in kept], dtype=torch.int64), kept)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.clip_uint8(index).float().div_(255), self.label(index)

    def describe(self) -> dict:
        """Facts for a run record: counts, decoder used, skipped videos with reasons."""
        return {"dataset": self.spec.name, "split": self.split, "clips": len(self), "videos": len(self.videos),
                "num_classes": self.num_classes, "decoder": self.decoder, "skipped": len(self.skipped),
                "skipped_items": [list(s) for s in self.skipped], "clips_per_video": self.clips_per_video}
