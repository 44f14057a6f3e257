# packaging.cmake - what `cmake --install` puts next to the programs (man
# pages, the systemd unit, the sysusers entry, the commented configuration,
# the runbooks) and a Debian package with CPack:
#
#   cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr
#   cmake --build build-deb -j && (cd build-deb && cpack -G DEB)
#
# With prefix /usr the configuration goes to /etc/kmsrelay (GNUInstallDirs'
# rule for /usr) and the unit to /usr/lib/systemd/system.

set(KR_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "systemd unit directory, relative to the install prefix")
set(KR_SYSUSERSDIR "lib/sysusers.d" CACHE STRING
    "sysusers.d directory, relative to the install prefix")

install(FILES ${PROJECT_SOURCE_DIR}/doc/kmsrelayd.8 ${PROJECT_SOURCE_DIR}/doc/kmsrelayctl.8
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT kmsrelay)
install(FILES ${PROJECT_SOURCE_DIR}/doc/kmsrelay.conf.5
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man5 COMPONENT kmsrelay)

# The unit in deploy/ names /usr/sbin and /etc: rewrite them for this prefix.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/deploy/kmsrelayd.service)
file(READ ${PROJECT_SOURCE_DIR}/deploy/kmsrelayd.service _kr_unit)
string(REPLACE "/usr/sbin/" "${CMAKE_INSTALL_FULL_SBINDIR}/" _kr_unit "${_kr_unit}")
string(REPLACE "/etc/kmsrelay/" "${CMAKE_INSTALL_FULL_SYSCONFDIR}/kmsrelay/" _kr_unit
       "${_kr_unit}")
file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/deploy/kmsrelayd.service CONTENT "${_kr_unit}")
install(FILES ${PROJECT_BINARY_DIR}/deploy/kmsrelayd.service
        DESTINATION ${KR_SYSTEMD_UNITDIR} COMPONENT kmsrelay)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/kmsrelay.sysusers DESTINATION ${KR_SYSUSERSDIR}
        RENAME kmsrelay.conf COMPONENT kmsrelay)

# The configuration: prefix /usr means /etc (GNUInstallDirs); any other
# prefix keeps it inside the prefix (etc/), also for `cmake --install --prefix`.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_kr_etc ${CMAKE_INSTALL_FULL_SYSCONFDIR})
else()
  set(_kr_etc ${CMAKE_INSTALL_SYSCONFDIR})
endif()
install(FILES ${PROJECT_SOURCE_DIR}/deploy/kmsrelay.conf DESTINATION ${_kr_etc}/kmsrelay
        COMPONENT kmsrelay)

install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/deploy/windows-runbook.md
              ${PROJECT_SOURCE_DIR}/deploy/kmsrelay.conf
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT kmsrelay)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/deploy/dns DESTINATION ${CMAKE_INSTALL_DOCDIR}
        COMPONENT kmsrelay OPTIONAL)

# ---- CPack: a .deb ----------------------------------------------------------
set(CPACK_PACKAGE_NAME kmsrelay)
set(CPACK_PACKAGE_VENDOR "kmsrelay")
set(CPACK_PACKAGE_CONTACT "kmsrelay maintainers <kmsrelay@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "front proxy for Microsoft KMS (volume activation) hosts")
set(CPACK_PACKAGE_DESCRIPTION
    "kmsrelayd sits in front of Microsoft KMS hosts: it terminates DCE/RPC, pins each client\n\
machine id to one host for life (weighted rendezvous hashing, LMDB), checks the hosts'\n\
health, fails over, publishes its own _vlmcs SRV record, and reports what KMS never\n\
tells an operator. It never answers an activation itself.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.invalid/kmsrelay")
find_program(KR_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(KR_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "libevent-2.1-7, libevent-extra-2.1-7, libldns3, liblmdb0, libconfig9, libjansson4, libssl3, libsystemd0, libgssapi-krb5-2, libkrb5-3, libldap-2.5-0, libsasl2-2, libsasl2-modules-gssapi-mit")
endif()
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus")
# Maintainer scripts and the conffile list, with this prefix's paths.
foreach(_s conffiles postinst prerm postrm)
  configure_file(${PROJECT_SOURCE_DIR}/deploy/debian/${_s}.in
                 ${PROJECT_BINARY_DIR}/deploy/debian/${_s} @ONLY
                 FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                                  GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  list(APPEND CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/deploy/debian/${_s})
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
