"""Learning-curve forecasts: the score a next training run at N samples gets, the plateau and the
samples a target needs, with intervals that carry which items were drawn, the run-to-run noise and
which curve family is right; or an honest "cannot tell"."""

from harness.forecast.curve import Curve
from harness.forecast.forecast import Forecast, forecast

__all__ = ["Curve", "Forecast", "forecast"]
