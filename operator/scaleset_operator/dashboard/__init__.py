"""`kubectl scaleset dashboard`: a live web page of scale sets and their OS upgrades.

The pure parts (`tiles`, `timeline`, `documents`, `security`) turn models into the JSON the
page draws and decide which requests to serve; `server` and `watches` do all the I/O.
"""
