//! Answering-machine detection: a pure streaming detector fed 20 ms frames.
