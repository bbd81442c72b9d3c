#include "testos.h"
void check_console(void) {}
void check_balloon(void) {}
void check_vsock(void) {}
void check_net(void) {}
void net_serve(void) {}
