#ifndef SWIFTDTM_CLMDB_SHIM_H
#define SWIFTDTM_CLMDB_SHIM_H
#include <lmdb.h>
#endif
