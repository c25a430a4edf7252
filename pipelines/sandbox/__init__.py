"""The sandbox: a local imitation of StackOne's API for tests and the demo/sandbox commands only."""
