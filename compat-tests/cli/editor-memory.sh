#!/bin/sh
# A scripted $EDITOR: sets the domain's memory to 32768 KiB.
sed -i "s|<memory unit='KiB'>[0-9]*</memory>|<memory unit='KiB'>32768</memory>|; s|<currentMemory unit='KiB'>[0-9]*</currentMemory>|<currentMemory unit='KiB'>32768</currentMemory>|" "$1"
