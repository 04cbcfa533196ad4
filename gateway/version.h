/* version.h - build-time facts. GW_DEFAULT_WEB_ROOT comes from CMake. */
#ifndef GW_VERSION_H
#define GW_VERSION_H
#define GW_VERSION "0.1.0"
#ifndef GW_DEFAULT_WEB_ROOT
#define GW_DEFAULT_WEB_ROOT "web-demo"
#endif
#endif
