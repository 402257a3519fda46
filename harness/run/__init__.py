"""One test run: config, generator, runner, history, store, analysis, and the `run` / `analyze` CLI."""
