#!/bin/sh
# A scripted $EDITOR making a definition the daemon must refuse.
sed -i "s|<memory unit='KiB'>|<memory unit='bogus'>|" "$1"
