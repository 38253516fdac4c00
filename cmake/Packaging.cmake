# The Debian package `bulkhead`: `cpack -G DEB` in the build directory.
# What goes where (prefix /usr):
#   bin/bulkhead, bin/bulkhead-agent, bin/bulkhead-controller
#   lib/cni/bulkhead-cni        the chained CNI plugin, next to the standard ones
#   lib/bulkhead/bulkhead-libvirt-hook, linked from /etc/libvirt/hooks/qemu.d/bulkhead
#   /lib/systemd/system/        the unit and its drop-ins (packaging/systemd/)
#   /etc/bulkhead/agent.yaml    conffile (packaging/agent.yaml)
#   /etc/bulkhead/controller.yaml  conffile (packaging/controller.yaml); its
#                               unit is installed, not enabled
#   lib/sysusers.d/bulkhead.conf  the `bulkhead` group, for systemd-sysusers
#   share/man/man8/             bulkhead.8.gz, bulkhead-agent.8.gz
#   share/bash-completion/completions/bulkhead
#   share/doc/bulkhead/         README, docs, examples/policies, examples/rsyslog
# Maintainer scripts: packaging/deb/. Tested by tests/package/deb_test.sh.

set(BULKHEAD_PKG ${PROJECT_SOURCE_DIR}/packaging)
set(BULKHEAD_DOC_DIR share/doc/bulkhead)

# Units: everything under packaging/systemd/, drop-in directories included.
set(BULKHEAD_UNIT_DIR /lib/systemd/system)
file(GLOB BULKHEAD_UNITS CONFIGURE_DEPENDS ${BULKHEAD_PKG}/systemd/*.service)
install(FILES ${BULKHEAD_UNITS} DESTINATION ${BULKHEAD_UNIT_DIR})
file(GLOB BULKHEAD_DROPIN_DIRS LIST_DIRECTORIES true CONFIGURE_DEPENDS
     ${BULKHEAD_PKG}/systemd/*.service.d)
foreach(dir IN LISTS BULKHEAD_DROPIN_DIRS)
  if(IS_DIRECTORY ${dir})
    get_filename_component(name ${dir} NAME)
    install(DIRECTORY ${dir}/ DESTINATION ${BULKHEAD_UNIT_DIR}/${name} FILES_MATCHING
            PATTERN "*.conf")
  endif()
endforeach()

install(FILES ${BULKHEAD_PKG}/agent.yaml ${BULKHEAD_PKG}/controller.yaml DESTINATION /etc/bulkhead)
install(FILES ${BULKHEAD_PKG}/sysusers/bulkhead.conf DESTINATION lib/sysusers.d)
install(FILES ${BULKHEAD_PKG}/completion/bulkhead
        DESTINATION share/bash-completion/completions)

# Man pages, gzipped as Debian ships them (-n: reproducible, no timestamp).
set(BULKHEAD_MAN_OUT ${PROJECT_BINARY_DIR}/man)
set(BULKHEAD_MAN_GZ)
foreach(page bulkhead.8 bulkhead-agent.8)
  add_custom_command(
    OUTPUT ${BULKHEAD_MAN_OUT}/${page}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${BULKHEAD_MAN_OUT}
    COMMAND gzip -9n -c ${BULKHEAD_PKG}/man/${page} > ${BULKHEAD_MAN_OUT}/${page}.gz
    DEPENDS ${BULKHEAD_PKG}/man/${page}
    COMMENT "gzip ${page}")
  list(APPEND BULKHEAD_MAN_GZ ${BULKHEAD_MAN_OUT}/${page}.gz)
endforeach()
add_custom_target(bulkhead_man ALL DEPENDS ${BULKHEAD_MAN_GZ})
install(FILES ${BULKHEAD_MAN_GZ} DESTINATION share/man/man8)

file(GLOB BULKHEAD_DOCS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${BULKHEAD_DOCS} DESTINATION ${BULKHEAD_DOC_DIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/policies/ DESTINATION ${BULKHEAD_DOC_DIR}/examples/policies)
install(DIRECTORY ${BULKHEAD_PKG}/rsyslog/ DESTINATION ${BULKHEAD_DOC_DIR}/examples/rsyslog)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME bulkhead)
set(CPACK_PACKAGE_VENDOR bulkhead)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "bulkhead maintainers <bulkhead@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "network microsegmentation agent for hypervisor and container hosts")
# CPack puts the summary first and indents each line of this.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "bulkhead-agent constrains each workload's egress (VMs, containers) to the
services its app is declared to need, with one nftables table in the host
namespace, and exports every denied flow to syslog or journald.
bulkhead is its command line: validate, plan and push policy, register
workloads, status, quarantine and the flow feed.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
# Library dependencies come from dpkg-shlibdeps; groupadd (passwd) and
# deb-systemd-helper (init-system-helpers) are what the maintainer scripts
# run. The agent talks netlink itself: nft(8) is only for operators.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd, init-system-helpers (>= 1.54~)")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "nftables")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "rsyslog-openssl")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${BULKHEAD_PKG}/deb/conffiles ${BULKHEAD_PKG}/deb/postinst ${BULKHEAD_PKG}/deb/prerm
    ${BULKHEAD_PKG}/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
