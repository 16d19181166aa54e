"""cets: an agent-based policy model of China's national carbon market."""

__version__ = "0.1.0"
