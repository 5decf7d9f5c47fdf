"""gdelt-forecast: forecast tomorrow's geopolitical events, country by country, from GDELT."""

__version__ = "0.1.0"
