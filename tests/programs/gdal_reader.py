"""GDAL reading a COG through /vsis3/ again and again in ONE process (so GDAL's own credential
cache must renew from IMDS across rotations). Debian's /usr/bin/python3 with python3-gdal.

argv: S3 endpoint URL, bucket. Prints one JSON line per read until terminated.
"""

import json
import signal
import sys
import time
from urllib.parse import urlparse

from osgeo import gdal

gdal.UseExceptions()
endpoint, bucket = sys.argv[1], sys.argv[2]
url = urlparse(endpoint)
gdal.SetConfigOption("AWS_S3_ENDPOINT", url.netloc)
gdal.SetConfigOption("AWS_HTTPS", "YES" if url.scheme == "https" else "NO")
gdal.SetConfigOption("AWS_VIRTUAL_HOSTING", "FALSE")
gdal.SetConfigOption("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    gdal.VSICurlClearCache()  # every read goes to S3 (and signs with current credentials)
    try:
        ds = gdal.Open(f"/vsis3/{bucket}/cog.tif")
        checksum = ds.GetRasterBand(1).Checksum()
        ds = None
        print(json.dumps({"ok": True, "checksum": checksum}), flush=True)
    except Exception as exc:
        print(json.dumps({"ok": False, "error": str(exc)[:300]}), flush=True)
    time.sleep(0.5)
