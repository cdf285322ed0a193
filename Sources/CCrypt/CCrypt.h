// libxcrypt (crypt(5) password hashing): crypt_gensalt_rn and crypt_rn. Only the Appliance
// module imports this; no C type crosses its public API.
#ifndef VTEP_CCRYPT_H
#define VTEP_CCRYPT_H

#include <crypt.h>

// The size of the output buffer crypt_gensalt_rn needs (crypt(3)).
static const int ccrypt_gensalt_output_size = CRYPT_GENSALT_OUTPUT_SIZE;
static const int ccrypt_output_size = CRYPT_OUTPUT_SIZE;

#endif
