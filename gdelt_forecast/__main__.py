"""``python -m gdelt_forecast`` runs the command line."""

from gdelt_forecast.cli import main

main()
