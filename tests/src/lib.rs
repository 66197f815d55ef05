//! palisade's end-to-end and kernel tests live in `tests/`; the harness they share
//! (emulated pods, the agent runner, manifest writers) is `palisade_lab`.
