"""English date formats, each date-time naming its zone: the admin shows some times in a
client's zone (referral cells) and the rest in UTC, so a bare time would be ambiguous."""

DATETIME_FORMAT = "N j, Y, P T"
SHORT_DATETIME_FORMAT = "m/d/Y P T"
