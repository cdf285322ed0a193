// libnftables (nftables' high-level library: the same parser and batch transactions as
// nft(8)). Only the Routing module imports this; no C type crosses its public API.
#ifndef VTEP_CNFTABLES_H
#define VTEP_CNFTABLES_H

#include <stdio.h>
#include <nftables/libnftables.h>

#endif
