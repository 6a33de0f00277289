#!/bin/sh
# Install Synapse (matrix-synapse from PyPI) into its own venv for the Matrix integration tests.
# The venv is $TODOBOT_SYNAPSE_VENV, by default <repo>/.venv-synapse. Safe to run again: it does
# nothing when Synapse already runs from there.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${TODOBOT_SYNAPSE_VENV:-$repo/.venv-synapse}
# Pinned: the Matrix tests meet the same homeserver on every machine.
SYNAPSE_VERSION=1.163.2

if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import synapse; print(synapse.__version__.split()[0])' 2>/dev/null)" = "$SYNAPSE_VERSION" ]; then
    echo "Synapse $SYNAPSE_VERSION already installed in $venv"
    exit 0
fi

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "Installing python3-venv (Debian package)"
    apt-get install -y --no-install-recommends python3-venv
fi

echo "Creating venv $venv"
python3 -m venv "$venv"
echo "Installing matrix-synapse from PyPI into $venv (about a minute)"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "matrix-synapse==$SYNAPSE_VERSION"
"$venv/bin/python" -m synapse.app.homeserver --help >/dev/null
echo "Synapse installed: $("$venv/bin/python" -c 'import synapse; print(synapse.__version__)')"
