"""Settlement: bank business-day calendars and the dates captured funds settle on."""
