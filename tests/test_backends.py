"""kmpress.backends: the backend pick, numba loaded only when needed, its cache folder and its
thread count set before it loads."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kmpress import autopick, backends

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, env: dict[str, str] | None = None) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def test_the_numpy_backend_never_imports_numba():
    code = (
        "import sys, numpy as np, kmpress\n"
        "img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)\n"
        "for kw in ({}, {'colorspace': 'oklab'}, {'dither': 'floyd-steinberg'}, {'smooth': 0.3},\n"
        "           {'target_psnr': 20}):\n"
        "    kmpress.quantize(img, backend='numpy', **kw)\n"
        "kmpress.kmeans(img.reshape(-1, 3), 4, backend='numpy')\n"
        "print('numba' in sys.modules)"
    )
    assert _run(code) == "False"


def test_import_kmpress_is_light():
    code = (
        "import sys, kmpress, kmpress.options, kmpress.errors; "
        "print(sorted(m for m in ('numpy', 'numba', 'PIL') if m in sys.modules))"
    )
    assert _run(code) == "[]"


def test_threads_set_before_numba_loads_apply_when_it_does():
    code = (
        "import sys\n"
        "from kmpress import backends\n"
        "backends.set_threads(1)\n"
        "assert 'numba' not in sys.modules\n"
        "backends.load('numba')\n"
        "import numba\n"
        "print(numba.get_num_threads())"
    )
    assert _run(code) == "1"


PROBE = (
    "import builtins, sys\n"
    "seen = []\n"
    "real = builtins.__import__\n"
    "def spy(name, *a, **k):\n"
    "    if name == 'scipy.linalg.cython_blas':\n"
    "        seen.append(sys.modules.get(name, 'not hidden') is None)\n"
    "    return real(name, *a, **k)\n"
    "builtins.__import__ = spy\n"
    "from kmpress import backends\n"
    "{setup}"
    "import numpy as np\n"
    "out = np.empty(2, np.uint8)\n"
    "backends.load('numba').gather(np.arange(2, dtype=np.uint8), np.zeros(2, np.int32), out)\n"
    "print(seen[:1])"
)


def test_own_process_makes_openmp_threads_spin_less_unless_the_user_said():
    code = (
        "import os, sys\n"
        "from kmpress import backends\n"
        "backends.own_process()\n"
        "import numpy as np\n"
        "out = np.empty(2, np.uint8)\n"
        "backends.load('numba').gather(np.arange(2, dtype=np.uint8), np.zeros(2, np.int32), out)\n"
        "print(os.environ.get('GOMP_SPINCOUNT'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert _run(code, env=env) == backends.OPENMP_DEFAULTS["GOMP_SPINCOUNT"]
    assert _run(code, env={**env, "GOMP_SPINCOUNT": "7"}) == "7"
    # a library user's process is left alone
    assert _run(code.replace("backends.own_process()\n", ""), env=env) == "None"


def test_the_handshake_counts_openmp_defaults_as_unset():
    from kmpress.cli import client

    assert client.SET_BY_KMPRESS == backends.OPENMP_DEFAULTS
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    prints = []
    for extra in ({}, backends.OPENMP_DEFAULTS, {"GOMP_SPINCOUNT": "7"}):
        with pytest.MonkeyPatch.context() as mp:
            for k in os.environ:
                mp.delenv(k)
            for k, v in {**env, **extra}.items():
                mp.setenv(k, v)
            prints.append(client.fingerprint())
    assert prints[0] == prints[1] != prints[2]


def test_own_process_skips_the_blas_probe():
    # numba's probe imports scipy.linalg.cython_blas (0.2-0.4 s where SciPy is installed); a spy
    # on __import__ sees the attempt, SciPy installed or not, and whether it was hidden
    assert _run(PROBE.format(setup="")) == "[False]"
    assert _run(PROBE.format(setup="backends.own_process()\n")) == "[True]"


def test_creatable(tmp_path):
    assert backends._creatable(tmp_path / "a" / "b")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        expected = os.geteuid() == 0  # root writes anywhere (a read-only mount is another matter)
        assert backends._creatable(ro / "x") is expected
    finally:
        ro.chmod(0o755)


def test_numba_cache_dir_fallback(monkeypatch, tmp_path):
    # set, then removed, through monkeypatch: what prepare_numba_cache sets below is undone with
    # it (a delenv of an unset variable records nothing, and the folder it sets would then stay,
    # sending every kernel loaded later in the session to an empty cache)
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setattr(backends, "_writable", lambda p: False)
    monkeypatch.setattr(backends, "_creatable", lambda p: False)
    monkeypatch.setitem(sys.modules, "numba", None)
    # numba already imported: too late to change anything, so nothing is set
    backends.prepare_numba_cache()
    assert "NUMBA_CACHE_DIR" not in os.environ
    monkeypatch.delitem(sys.modules, "numba")
    backends.prepare_numba_cache()
    assert os.environ["NUMBA_CACHE_DIR"].startswith(str(Path(os.environ.get("TMPDIR", "/tmp"))))
    # a writable package folder (the normal case): numba caches beside the sources, nothing set
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setattr(backends, "_writable", lambda p: True)
    backends.prepare_numba_cache()
    assert "NUMBA_CACHE_DIR" not in os.environ
    # a read-only package but a usable home: numba's own user-wide cache, nothing set
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(backends, "_writable", lambda p: False)
    monkeypatch.setattr(backends, "_creatable", lambda p: True)
    backends.prepare_numba_cache()
    assert "NUMBA_CACHE_DIR" not in os.environ
    # a user's own setting wins
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(backends, "_writable", lambda p: False)
    backends.prepare_numba_cache()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path)


def test_a_forced_backend_is_kept_whatever_the_work():
    for name in ("numba", "numpy"):
        for colors in (None, 1, 10**8):
            assert backends.choose(name, 10**8, 256, colors) == name
            assert backends.choose(name, 1, 1, colors) == name


def test_auto_first_step_sends_only_large_images_straight_to_numba():
    cut = backends.AUTO_NUMBA_PIXELS
    for k in (1, 16, 256):
        # builds the histogram, then picks again
        assert backends.choose("auto", cut, k, numba_warm=False) == "numpy"
        assert backends.choose("auto", cut + 1, k, numba_warm=False) == "numba"


def test_auto_counts_distinct_colors_times_k_not_pixels():
    # a 135 k-pixel photo of 84 k colours at K=16: NumPy's work, though pixels x K is over 2^21
    assert backends.choose("auto", 135_000, 16, colors=84_000, numba_loaded=False, numba_warm=False) == "numpy"
    # the same pixels with every colour distinct at K=64: numba's
    assert backends.choose("auto", 135_000, 64, colors=135_000, numba_loaded=False, numba_warm=False) == "numba"
    for loaded, limit in ((False, backends.AUTO_NUMPY_WORK), (True, backends.AUTO_NUMPY_WORK_LOADED)):
        for k in (1, 2, 16, 256):
            at = limit // k
            assert backends.choose("auto", 10**6, k, colors=at, numba_loaded=loaded, numba_warm=False) == "numpy"
            assert backends.choose("auto", 10**6, k, colors=at + 1, numba_loaded=loaded, numba_warm=False) == "numba"


def test_auto_pays_less_for_numba_once_it_is_imported():
    assert backends.AUTO_NUMPY_WORK_LOADED < backends.AUTO_NUMPY_WORK
    colors = backends.AUTO_NUMPY_WORK // 16
    assert backends.choose("auto", 10**6, 16, colors=colors, numba_loaded=False, numba_warm=False) == "numpy"
    assert backends.choose("auto", 10**6, 16, colors=colors, numba_loaded=True, numba_warm=False) == "numba"
    # looked up when not said
    expected = "numba" if "numba" in sys.modules else "numpy"
    assert backends.choose("auto", 10**6, 16, colors=colors, numba_warm=False) == expected


def test_auto_small_image_of_few_colors_never_imports_numba():
    # 136 k pixels x K=16 is over 2^21, but the histogram holds 512 colours: without a per-pixel
    # remap NumPy does it all
    code = (
        "import sys, numpy as np, kmpress\n"
        "rng = np.random.default_rng(0)\n"
        "img = (rng.integers(0, 8, (340, 400, 3)) * 32).astype(np.uint8)\n"
        "kmpress.quantize(img, 16, dither=None)\n"
        "kmpress.quantize(img[:100, :100], 16)\n"
        "kmpress.kmeans(img.reshape(-1, 3)[:4000], 16)\n"
        "print('numba' in sys.modules)"
    )
    assert _run(code) == "False"


def test_auto_sends_a_per_pixel_remap_over_its_limit_to_numba():
    # NumPy's error diffusion is a Python loop searching the whole palette for every pixel: its
    # work is pixels x (K + PIXEL_OVERHEAD), past AUTO_NUMPY_PIXEL_WORK numba's start-up pays
    cut, extra = backends.AUTO_NUMPY_PIXEL_WORK, backends.PIXEL_OVERHEAD
    for k in (1, 16, 64, 256):
        at = cut // (k + extra)
        for colors in (None, 1, 512):
            pick = functools.partial(backends.choose, "auto", k=k, colors=colors, numba_loaded=False, numba_warm=False)
            assert pick(at, per_pixel=True) == "numpy"
            assert pick(at + 1, per_pixel=True) == "numba"
            assert pick(at + 1, per_pixel=False) == "numpy"
    # a 64x64 image: NumPy at K=16, numba at K=256 only when the image is 128x128
    assert backends.choose("auto", 64 * 64, 256, 4096, numba_loaded=False, per_pixel=True, numba_warm=False) == "numpy"
    assert (
        backends.choose("auto", 128 * 128, 256, 4096, numba_loaded=False, per_pixel=True, numba_warm=False) == "numba"
    )
    assert backends.choose("auto", 128 * 128, 16, 4096, numba_loaded=False, per_pixel=True, numba_warm=False) == "numpy"
    code = (
        "import sys, numpy as np, kmpress\n"
        "rng = np.random.default_rng(0)\n"
        "img = (rng.integers(0, 8, (340, 400, 3)) * 32).astype(np.uint8)\n"
        "q = kmpress.quantize(img, 16)\n"
        "print('numba' in sys.modules)"
    )
    assert _run(code) == "True"


def test_auto_runs_numba_whatever_the_work_once_its_kernels_are_loaded():
    for k in (1, 16, 256):
        for per_pixel in (False, True):
            assert backends.choose("auto", 1, k, 1, numba_loaded=True, per_pixel=per_pixel, numba_warm=True) == "numba"
            assert (
                backends.choose("auto", 1, k, None, numba_loaded=True, per_pixel=per_pixel, numba_warm=True) == "numba"
            )
    # a forced backend stays what it is
    assert backends.choose("numpy", 1, 16, 1, numba_warm=True) == "numpy"


def test_numba_is_warm_only_once_every_serial_kernel_is_loaded():
    code = (
        "import sys, numpy as np, kmpress\n"
        "from kmpress import backends\n"
        "img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)\n"
        "kmpress.quantize(img, 16)\n"
        "before = backends.numba_is_warm()\n"
        "for k in backends.load('numba').kernels(parallel=False):\n"
        "    k.dispatcher\n"
        "print(before, 'numba' in sys.modules, backends.numba_is_warm(), backends.choose('auto', 1600, 16, 1600))"
    )
    assert _run(code) == "False True True numba"


def test_numba_is_not_warm_while_another_thread_is_importing_the_kernels(monkeypatch):
    # a warm-up thread importing the kernels: their registry module is in sys.modules from the
    # start of its body, before its REGISTRY exists; a pick in the main thread meanwhile must not fail
    import types

    monkeypatch.setitem(sys.modules, "kmpress.kernels_numba._jit", types.ModuleType("kmpress.kernels_numba._jit"))
    assert autopick.numba_is_warm() is False
    assert backends.choose("auto", 1 << 24, 16, 1 << 20) in ("numba", "numpy")


def test_auto_picks_again_after_the_histogram(monkeypatch):
    import numpy as np

    from kmpress import quantize

    rng = np.random.default_rng(1)
    many = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)  # some 120 k colours: x 64 is numba's
    few = (many // 64 * 64).astype(np.uint8)  # 64 colours
    load = backends.load
    monkeypatch.setattr(autopick, "numba_is_warm", lambda: False)  # other tests may have loaded every kernel
    for img, k, picks in ((many, 64, ["numpy", "numba"]), (few, 16, ["numpy"])):
        loaded: list[str] = []
        monkeypatch.setattr(backends, "load", lambda name, seen=loaded: (seen.append(name), load(name))[1])
        q = quantize(img, k, seed=3, max_iter=3, dither=None)
        monkeypatch.setattr(backends, "load", load)
        assert loaded == picks
        # the pick changes only the speed
        for name in ("numpy", "numba"):
            r = quantize(img, k, seed=3, max_iter=3, dither=None, backend=name)
            assert np.array_equal(q.palette, r.palette) and np.array_equal(q.indices, r.indices)


@pytest.mark.needs_jit
def test_every_kernel_is_registered_and_nothing_is_told_when_all_load_from_the_cache():
    kn = backends.load("numba")
    kernels = kn.all_kernels()
    twins = [kn.nearest, kn.assign_accumulate, kn.pp_state, kn.pp_update, kn.pp_trials, kn.remap_codes]
    for t in twins:
        assert t.serial in kernels and t.parallel in kernels
    for name in ("colors_to_lab", "delta_e_colors", "floyd_steinberg", "smooth", "gather", "pixel_stats"):
        assert getattr(kn, name) in kernels
    told = []
    backends.on_compile(told.append)
    try:
        # the test session compiled them all first (conftest.py)
        assert [k.key for k in kernels if not k.cached()] == []
        assert backends.compile_ahead(kernels) == []
        for k in kernels:
            _ = k.dispatcher
    finally:
        backends.on_compile(None)
    assert told == []


@pytest.mark.needs_jit
def test_where_nothing_can_be_saved_no_kernel_is_compiled_in_another_process(monkeypatch):
    kn = backends.load("numba")
    kernels = kn.warm_up_kernels(1 << 20, [4, 64], "oklab", dither="floyd-steinberg")
    monkeypatch.setattr(backends, "_counted", set())
    monkeypatch.setattr(backends, "_done", 0)
    monkeypatch.setattr(type(kernels[0]), "cached", lambda self: False)
    monkeypatch.setattr(kn, "cache_writable", lambda kernel: False)
    monkeypatch.setattr(kn, "compile_in_processes", lambda *a, **k: pytest.fail("a worker's kernel cannot be saved"))
    told = []
    backends.on_compile(told.append)
    try:
        assert backends.compile_ahead(kernels, processes=2) == []
    finally:
        backends.on_compile(None)
    # told once, with every kernel: they compile here, each at its first call
    assert [(s.done, s.total) for s in told] == [(0, len(kernels))]
    assert kn.colors_to_lab in kernels and kn.floyd_steinberg in kernels and kn.gather not in kernels


def test_a_compile_worker_whose_caller_is_gone_before_it_starts_does_nothing(monkeypatch):
    # the caller exited during the worker's start-up: its death signal, set up after, would never
    # come; the worker sees its parent is another process and ends without reading its input
    import io

    from kmpress.kernels_numba import _compile

    monkeypatch.setattr(_compile, "_die_with_parent", lambda: None)  # not on the test's own process
    for parent, answers in ((os.getppid() + 1, ""), (os.getppid(), "error kmpress.kernels_numba._jit:none KeyError\n")):
        monkeypatch.setenv(_compile.PARENT_ENV, str(parent))
        out = io.StringIO()
        _compile.serve(io.StringIO("kmpress.kernels_numba._jit:none\n"), out)
        assert out.getvalue() == answers


def test_a_compile_worker_being_stopped_dies_with_its_caller(tmp_path):
    """Ctrl-C while the kernels compile: the caller closes each worker's input and waits for it,
    and may exit meanwhile; a worker still finishing its kernel is then killed, not left behind."""
    marker = f"kmpress-test-worker-{os.getpid()}-{tmp_path.name}"
    script = f"""
import sys, threading, time
from kmpress.kernels_numba import _compile

class Kernel:
    key = "k"

# a worker that answers, then keeps "compiling" past the caller's life
worker = [sys.executable, "-c", "import sys, time; sys.stdin.readline(); print('error k', flush=True); "
          "time.sleep(60)  # {marker}"]
threading.Thread(target=_compile.compile_in_processes, args=([Kernel()], 1, worker), kwargs=dict(expect=False),
                 daemon=True).start()
time.sleep(1.5)  # the worker has answered: the caller is waiting for it to exit
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

    def alive() -> list[str]:
        found = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(d.name)
            except OSError:
                pass
        return found

    for _ in range(20):  # a moment to be reaped
        if not alive():
            break
        time.sleep(0.1)
    leftover = alive()
    for pid in leftover:
        os.kill(int(pid), 9)
    assert leftover == []


_WARM_UP_RUN = """
import json, sys, threading, time
import numpy as np
from PIL import Image
import kmpress
from kmpress import kernels_numba as kn
measure, dither = json.loads(sys.argv[1])
y, x = np.mgrid[0:1500, 0:1500]
rng = np.random.default_rng(0)
img = np.stack([x // 6, y // 6, (x + y) // 12], -1) + rng.integers(0, 4, (1500, 1500, 3))
Image.fromarray(img.astype(np.uint8)).save(sys.argv[2])
kmpress.compress(sys.argv[2], sys.argv[2] + ".out.png", 16, dither=dither, measure=measure, backend="auto")
while any(t.name == "kmpress-numba-warm-up" and t.is_alive() for t in threading.enumerate()):
    time.sleep(0.01)
listed = [k.key for k in kn.warm_up_kernels(1500 * 1500, [16], "rgb", dither, False, measure)]
loaded = [k.key for k in kn.all_kernels() if k.loaded]
print(json.dumps({"listed": listed, "loaded": loaded}))
"""


@pytest.mark.needs_jit
@pytest.mark.parametrize("measure", [True, False])
@pytest.mark.parametrize("dither", ["adaptive", None])
def test_the_warm_up_loads_the_kernels_a_run_calls_and_no_others(tmp_path, measure, dither):
    """What the warm-up thread loads ahead: every kernel the run then calls (a twin may call
    its other variant), and not the perceptual score's when the figures are not measured
    (``kmpress compress -q``), nor the dithered error's."""
    import json

    out = subprocess.run(
        [sys.executable, "-c", _WARM_UP_RUN, json.dumps([measure, dither]), str(tmp_path / "img.png")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    listed, loaded = set(got["listed"]), set(got["loaded"])
    assert listed <= loaded  # the warm-up loaded them all

    def base(key: str) -> str:
        return key.removesuffix("_parallel")

    assert {base(k) for k in loaded} == {base(k) for k in listed}
    scored = {k for k in loaded if ":ssim2_" in k or k.endswith(":expand") or k.endswith(":expand_parallel")}
    assert bool(scored) == measure
    assert any(k.endswith(":pixel_stats") for k in loaded) == (measure and dither is not None)
