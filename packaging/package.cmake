# package.cmake - install rules for the service (unit, /etc, man pages, docs)
# and CPack's Debian package (docs/operations.md). Included from the top
# CMakeLists.txt. Build the package: cmake -B build -DCMAKE_INSTALL_PREFIX=/usr
# && cmake --build build && (cd build && cpack -G DEB)
# -> notify-gateway_<version>_amd64.deb

# /etc/notify-gateway and the unit: for the prefix /usr (the package, or
# cmake --install --prefix /usr) they go to /etc and /lib/systemd/system (where
# Debian 12 keeps packaged units; lintian refuses /usr/lib/systemd/system
# before the /usr-merge transition is over), else under the prefix. Decided at
# install time (the build tree's prefix is /usr/local; cpack installs it into
# <staging>/usr): the destinations are relative, "../etc" from .../usr.
install(CODE [[
  if(CMAKE_INSTALL_PREFIX MATCHES "/usr/?$")
    set(GW_ETC_REL ../etc/notify-gateway)
    set(GW_UNIT_REL ../lib/systemd/system)
  else()
    set(GW_ETC_REL etc/notify-gateway)
    set(GW_UNIT_REL lib/systemd/system)
  endif()
]])
install(FILES ${PROJECT_SOURCE_DIR}/packaging/notify-gateway.service DESTINATION \${GW_UNIT_REL})
install(FILES ${PROJECT_SOURCE_DIR}/packaging/notify-gateway.sysusers
  DESTINATION lib/sysusers.d RENAME notify-gateway.conf)
# /etc/notify-gateway: the configuration and the rules it names (conffiles)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/config.yml DESTINATION \${GW_ETC_REL})
install(FILES ${PROJECT_SOURCE_DIR}/docs/examples/default.yml DESTINATION \${GW_ETC_REL} RENAME rules.yml)
# man pages, compressed as Debian policy wants them
foreach(page notify-gateway.1 notify-gateway-rules.5)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/man/${page}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/man
    COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/packaging/${page} > ${CMAKE_CURRENT_BINARY_DIR}/man/${page}.gz
    DEPENDS ${PROJECT_SOURCE_DIR}/packaging/${page})
  list(APPEND GW_MAN_GZ ${CMAKE_CURRENT_BINARY_DIR}/man/${page}.gz)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/man/${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(gw_man_pages ALL DEPENDS ${GW_MAN_GZ})
# /usr/share/doc/notify-gateway: copyright, changelog and the admin's docs
add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz
  COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/packaging/debian/changelog > ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz
  DEPENDS ${PROJECT_SOURCE_DIR}/packaging/debian/changelog)
add_custom_target(gw_changelog ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz ${PROJECT_SOURCE_DIR}/packaging/debian/copyright
  DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES docs/configuration.md docs/rules.md docs/protocol.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR})
if(EXISTS ${PROJECT_SOURCE_DIR}/docs/operations.md)
  install(FILES docs/operations.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME notify-gateway)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "notify-gateway maintainers <notify-gateway@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "realtime in-app notification gateway for Forge apps")
set(CPACK_PACKAGE_DESCRIPTION "notify-gateway receives product events that Atlassian Forge posts, evaluates
a YAML rule file and pushes signed per-user notifications over websockets to
the browser. Includes a systemd unit, Prometheus metrics and readiness
endpoints for load balancers.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.org/notify-gateway")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# lws loads its libuv event-loop plugin at run time (no ELF dependency)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libwebsockets-evlib-uv, adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
  ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
  ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
  ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)
