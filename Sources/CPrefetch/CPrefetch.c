// Everything in this module is the inline functions of include/CPrefetch.h; SwiftPM needs one
// source file to build a C target.
#include "CPrefetch.h"
