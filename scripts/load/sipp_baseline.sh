#!/usr/bin/env bash
# The reference figure: SIPp caller (tests/sipp/uac_load.xml) -> SIPp far end
# (tests/sipp/uas_load.xml) on loopback, same cores, same scenario as cps.sh. Prints one line
#   result kind=cps target=sipp rate=.. calls=.. ok=.. failed=.. ...
# (server_* fields are the SIPp far end's).
#
# usage: scripts/load/sipp_baseline.sh [--rate CPS] [--seconds S] [--hold-ms MS]
exec "$(dirname "$0")/cps.sh" --target sipp "$@"
