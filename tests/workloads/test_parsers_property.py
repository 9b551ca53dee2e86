"""Property tests (hypothesis) for the files users feed the workloads: IDX data, asset bundles (manifest and
tar) and a run's state.json. Invariant: a correct result, or one InputError (the CLI prints it as one line and
exits 2); never another exception, and never a write outside the Keras cache being installed into."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import tarfile
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from workloads.data import assets
from workloads.data.images import read_idx
from workloads.errors import InputError
from workloads.recipes.mnist import StageConfig, saved_config, stage_config
from workloads.training.recorder import load_state

EXAMPLES = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)


# --- IDX ----------------------------------------------------------------------------------------------------
@st.composite
def idx_files(draw) -> tuple[bytes, int, bool]:
    ndims = draw(st.sampled_from([1, 3]))
    right_magic = 0x0803 if ndims == 3 else 0x0801
    magic = draw(st.one_of(st.just(right_magic), st.integers(0, 2**32 - 1)))
    dims = draw(
        st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), min_size=ndims, max_size=ndims)
    )
    declared = math.prod(dims)
    body_size = draw(st.one_of(st.just(min(declared, 5000)), st.integers(0, 400)))
    body = np.random.default_rng(body_size).integers(0, 256, body_size, dtype=np.uint8).tobytes()
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + body
    raw = raw[: draw(st.integers(0, len(raw)))] if draw(st.booleans()) else raw  # maybe cut short
    compress = draw(st.booleans())
    if compress:
        raw = gzip.compress(raw)
        if draw(st.booleans()) and raw:  # a damaged gzip stream
            at = draw(st.integers(0, len(raw) - 1))
            raw = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]
    return raw, ndims, compress


@EXAMPLES
@given(idx_files() | st.tuples(st.binary(max_size=200), st.sampled_from([1, 3]), st.booleans()))
def test_the_idx_reader_returns_the_declared_array_or_one_input_error(case) -> None:
    raw, ndims, compress = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("file-idx-ubyte" + (".gz" if compress else ""))
        path.write_bytes(raw)
        try:
            array = read_idx(path, expect_dims=ndims)
        except InputError as exc:
            assert "\n" not in str(exc)
            event("refused")
            return
    event("read")
    plain = gzip.decompress(raw) if compress else raw
    header = 4 + 4 * ndims
    dims = [int.from_bytes(plain[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndims)]
    assert array.dtype == np.uint8 and list(array.shape) == dims and all(dims)
    assert array.tobytes() == plain[header:]


# --- Asset bundles: manifest and tar ------------------------------------------------------------------------
TABLE = assets.asset_table()
HEX64, HEX32 = (
    st.text("0123456789abcdef", min_size=64, max_size=64),
    st.text("0123456789abcdef", min_size=32, max_size=32),
)


@st.composite
def bundles(draw) -> tuple[dict, dict[str, bytes], list[tuple[str, bytes]]]:
    """A manifest (often right, then bent in one place), the files the bundle holds, extra tar members."""
    files: dict[str, bytes] = {}
    entries = {}
    for name in draw(st.lists(st.sampled_from(sorted(TABLE)), max_size=3, unique=True)):
        spec = TABLE[name]
        content = draw(st.binary(max_size=64))
        rel = f"{spec['subdir']}/{spec['file']}"
        files[rel] = content
        entries[name] = {"file": spec["file"], "subdir": spec["subdir"], "size": len(content),
                         "sha256": hashlib.sha256(content).hexdigest(),
                         "md5": hashlib.md5(content).hexdigest()}  # fmt: skip
    if entries and draw(st.booleans()):  # bend one field of one entry
        name = draw(st.sampled_from(sorted(entries)))
        key = draw(st.sampled_from(["file", "subdir", "size", "sha256", "md5", "name"]))
        if key == "name":
            entries[draw(st.text(min_size=1, max_size=12))] = entries.pop(name)
        else:
            places = st.sampled_from(["..", "/etc", "datasets", "models"])
            entries[name][key] = draw(st.one_of(JSON, HEX64, HEX32, st.integers(-3, 2**45), places))
    manifest = {"format": 1, "assets": entries}
    if draw(st.integers(0, 5)) == 0:
        manifest = draw(st.one_of(JSON, st.fixed_dictionaries({"format": JSON, "assets": JSON})))
    if files and draw(st.booleans()):  # a file that differs from its manifest entry
        rel = draw(st.sampled_from(sorted(files)))
        files[rel] = draw(st.binary(max_size=64))
    names = st.sampled_from(["models/extra.h5", "../escape", "/abs", "datasets", "x"])
    extra = draw(st.lists(st.tuples(names, st.binary(max_size=8)), max_size=2))
    return manifest, files, extra


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@EXAMPLES
@given(bundles(), st.booleans(), st.integers(min_value=-1, max_value=4000))
def test_installing_any_bundle_is_all_or_nothing(bundle, as_tar, flip_at) -> None:
    manifest, files, extra = bundle
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home, source = tmp / "home", tmp / "bundle"
        (home / "datasets").mkdir(parents=True)
        (home / "datasets" / "cats_and_dogs_filtered.zip").write_bytes(b"what was there")
        for rel, content in files.items():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            (source / rel).write_bytes(content)
        source.mkdir(exist_ok=True)
        (source / "manifest.json").write_text(json.dumps(manifest))
        if as_tar:
            archive = tmp / "bundle.tar"
            with tarfile.open(archive, "w") as tar:
                tar.add(source, arcname=".")
                for name, content in extra:
                    info = tarfile.TarInfo(name)
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
            if flip_at >= 0:  # a damaged archive
                data = bytearray(archive.read_bytes())
                data[flip_at % len(data)] ^= 0x55
                archive.write_bytes(bytes(data))
            source = archive
        before, outside = snapshot(home), sorted(p.name for p in tmp.iterdir())
        try:
            installed = assets.install(source, home)
        except InputError as exc:
            assert "\n" not in str(exc)
            assert snapshot(home) == before, "a refused install changed the cache"
            event("refused")
        else:
            event("installed")
            expected = dict(before)
            for path in installed:
                rel = path.relative_to(home).as_posix()
                expected[rel] = files[rel]
            assert snapshot(home) == expected
        assert sorted(p.name for p in tmp.iterdir()) == outside, "something was written outside the cache"
        assert not list(home.glob(".assets-install-*")), "a staging folder was left"


# --- state.json of an interrupted run -----------------------------------------------------------------------
def _good_state() -> dict:
    config = asdict(stage_config(2))
    return {"stage": 2, "quick": True, "data": None, "seed": 7, "epochs": 3, "config": config,
            "epochs_done": 1, "history": {"loss": [0.5], "accuracy": [0.8]}}  # fmt: skip


@st.composite
def states(draw) -> object:
    state = _good_state()
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from([*state, "config.batch_size", "config.learning_rate", "config.stage"]))
        value = draw(st.one_of(JSON, st.integers(-2, 2**40), st.floats()))
        if key.startswith("config."):
            config = state.get("config") if isinstance(state.get("config"), dict) else {}
            state["config"] = {**config, key.split(".", 1)[1]: value}
        elif draw(st.booleans()):
            state[key] = value
        else:
            state.pop(key)
    return draw(st.one_of(st.just(state), JSON)) if draw(st.integers(0, 4)) == 0 else state


@EXAMPLES
@given(states())
def test_a_state_json_resumes_its_recipe_or_is_one_input_error(state) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        (run / "checkpoint.keras").write_bytes(b"PK")
        try:
            text = json.dumps(state)
        except ValueError:
            return
        (run / "state.json").write_text(text)
        try:
            loaded = load_state(run)
            cfg = saved_config(loaded, run)
        except InputError as exc:
            assert "\n" not in str(exc)
            event("refused")
            return
    event("resumed")
    assert isinstance(cfg, StageConfig) and cfg.stage == loaded["stage"] and cfg.batch_size >= 1
    assert 0 <= loaded["epochs_done"] <= loaded["epochs"] and 0 <= loaded["seed"] < 2**32
