"""The built-in demo source: replays the bundled example alerts with times relative to now."""
