"""Test doubles that ship with credd for its tests and benchmarks: FakeClock, MemoryBackend,
ManualScheduler (the engine's jobs run by hand on a FakeClock)."""
