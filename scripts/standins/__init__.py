"""Local test stand-ins for Kiln (moto, fleet simulator, fault proxy, git server, HTTP fixture).

Everything here binds and talks only to 127.0.0.0/8.
"""
