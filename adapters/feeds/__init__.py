"""The feeds floor: what the sources that read a feed share.

* :mod:`adapters.feeds.base` -- options, one capped HTTP GET, the source's queue and tasks;
* :mod:`adapters.feeds.polling` -- the poll loop, its backoff, conditional GET and health;
* :mod:`adapters.feeds.state` -- the durable state file of a poller (the last timestamp read).
"""
