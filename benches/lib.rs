//! Benchmarks for redress live beside this file: `domain.rs` (criterion micro-benchmarks
//! of the pure domain), `pipeline.py` and `reference_worker.py` (the whole pipeline on the
//! local stack against a Python boto3 worker). Run them with `make bench`.
