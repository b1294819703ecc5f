"""National Weather Service active alerts from api.weather.gov, as CAP XML."""
