"""Test doubles that ship with credd for its tests and benchmarks: FakeClock, MemoryBackend."""
