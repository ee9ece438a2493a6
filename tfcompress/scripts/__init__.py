"""Thin absl programs over `tfcompress.training` (see docs/scripts.md):

    python -m tfcompress.scripts.train     --flagfile=configs/<recipe>.cfg
    python -m tfcompress.scripts.compress  --flagfile=configs/<recipe>.cfg
    python -m tfcompress.scripts.evaluate  --checkpoint=<run dir or .keras> --test_data=...
    python -m tfcompress.scripts.export    --checkpoint=<run dir or .keras> --output_dir=...
    python -m tfcompress.scripts.demo      # make demo

`common_flags` (devices, model, training), `prune_flags` (compress) and `eval_flags`
(evaluate, export) define the flags and turn them into configs; `cli` wraps the one library
call of each `main`; `demo_lib` runs the demo through the other scripts. Each `run()` (the
console entry point) starts its `main` through `tfrecords_tools.entry`, as the converters do.
"""
