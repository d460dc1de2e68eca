# Build and install the wtmpdb command, the PAM module, the daemon wtmpdbd and the C library.
#   make build
#   make install [DESTDIR=...] [PREFIX=/usr/local] [PAMDIR=<libdir>/security] [LIBDIR=$(PREFIX)/lib]
#   make install-lib [DESTDIR=...] [PREFIX=...] [LIBDIR=...] [LIBWTMPDB_SO=<built .so>]
#   make deb          Debian packages into target/debian/ (dpkg-buildpackage, debian/)

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share
UNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
TMPFILESDIR ?= $(shell pkg-config --variable=tmpfilesdir systemd 2>/dev/null || echo /usr/lib/tmpfiles.d)
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
RELEASE := $(TARGET_DIR)/release
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# libwtmpdb.so.0 carries upstream's interface up to 0.75 (its version nodes); the file name
# says so, as Debian's libwtmpdb.so.0.75.0 does.
LIBWTMPDB_VERSION := 0.75.0
# The shared object cargo builds (give another, e.g. a debug build, to install that one).
LIBWTMPDB_SO ?= $(RELEASE)/libwtmpdb_c.so

# The distribution's PAM module directory: where libpam itself lives, else the multiarch
# directory, else the traditional one.
PAMDIR ?= $(shell \
	d=$$(pkg-config --variable=libdir pam 2>/dev/null); \
	m=$$(gcc -print-multiarch 2>/dev/null); \
	if [ -n "$$d" ]; then echo "$$d/security"; \
	elif [ -n "$$m" ] && [ -d "/usr/lib/$$m/security" ]; then echo "/usr/lib/$$m/security"; \
	else echo /lib/security; fi)

SYSCONFDIR ?= /etc
CATALOGDIR ?= $(shell pkg-config --variable=catalogdir systemd 2>/dev/null || echo /usr/lib/systemd/catalog)

.PHONY: all build install install-lib install-systemd install-last-link uninstall test deb

all: build

build:
	$(CARGO) build --release -p wtmpdb-cli -p pam_wtmpdb -p wtmpdbd -p libwtmpdb

$(RELEASE)/wtmpdb $(RELEASE)/libpam_wtmpdb.so $(RELEASE)/wtmpdbd &:
	$(CARGO) build --release -p wtmpdb-cli -p pam_wtmpdb -p wtmpdbd

$(RELEASE)/libwtmpdb_c.so:
	$(CARGO) build --release -p libwtmpdb

install: $(RELEASE)/wtmpdb $(RELEASE)/libpam_wtmpdb.so $(RELEASE)/wtmpdbd install-lib
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PAMDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(LIBEXECDIR)
	install -m 0755 $(RELEASE)/wtmpdbd $(DESTDIR)$(LIBEXECDIR)/wtmpdbd
	install -m 0644 crates/daemon/wtmpdbd.8 $(DESTDIR)$(MANDIR)/man8/wtmpdbd.8
	install -m 0755 $(RELEASE)/wtmpdb $(DESTDIR)$(BINDIR)/wtmpdb
	install -m 0644 $(RELEASE)/libpam_wtmpdb.so $(DESTDIR)$(PAMDIR)/pam_wtmpdb.so
	install -m 0644 crates/pam/pam_wtmpdb.8 $(DESTDIR)$(MANDIR)/man8/pam_wtmpdb.8
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 0644 crates/cli/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -d $(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d
	install -m 0644 crates/cli/completions/wtmpdb.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/wtmpdb
	install -m 0644 crates/cli/completions/_wtmpdb $(DESTDIR)$(DATADIR)/zsh/site-functions/_wtmpdb
	install -m 0644 crates/cli/completions/wtmpdb.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/wtmpdb.fish
	install -d $(DESTDIR)$(CATALOGDIR)
	install -m 0644 systemd/wtmpdb.catalog $(DESTDIR)$(CATALOGDIR)/wtmpdb.catalog
	@if [ -z "$(DESTDIR)" ] && command -v journalctl >/dev/null; then journalctl --update-catalog || true; fi

# The C library: libwtmpdb.so.0.75.0 with the links libwtmpdb.so.0 (the soname) and
# libwtmpdb.so (for -lwtmpdb), wtmpdb.h, libwtmpdb.pc and libwtmpdb(3).
install-lib: $(LIBWTMPDB_SO)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0644 $(LIBWTMPDB_SO) $(DESTDIR)$(LIBDIR)/libwtmpdb.so.$(LIBWTMPDB_VERSION)
	ln -sf libwtmpdb.so.$(LIBWTMPDB_VERSION) $(DESTDIR)$(LIBDIR)/libwtmpdb.so.0
	ln -sf libwtmpdb.so.0 $(DESTDIR)$(LIBDIR)/libwtmpdb.so
	install -m 0644 crates/libwtmpdb/include/wtmpdb.h $(DESTDIR)$(INCLUDEDIR)/wtmpdb.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(LIBWTMPDB_VERSION)|' crates/libwtmpdb/libwtmpdb.pc.in \
		> $(DESTDIR)$(PKGCONFIGDIR)/libwtmpdb.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/libwtmpdb.pc
	install -d $(DESTDIR)$(MANDIR)/man3
	install -m 0644 crates/libwtmpdb/libwtmpdb.3 $(DESTDIR)$(MANDIR)/man3/libwtmpdb.3

# systemd units (boot/shutdown records, monthly rotation, the daemon and its socket) and
# the database directory. The daemon owns the database by default: its socket is enabled
# (the link `systemctl enable` makes, also under DESTDIR) and, on a running systemd without
# DESTDIR, started. A database every user may open is named, with the command that hands
# it to the daemon (`wtmpdb secure`): that changes the admin's data, so it is not done here.
WANTSDIR ?= $(SYSCONFDIR)/systemd/system/sockets.target.wants
install-systemd:
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR)
	for u in wtmpdb-update-boot.service wtmpdb-rotate.service wtmpdb-rotate.timer \
		wtmpdbd.socket wtmpdbd.service; do \
		sed 's|@BINDIR@|$(BINDIR)|g; s|@LIBEXECDIR@|$(LIBEXECDIR)|g' systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; done
	install -m 0644 systemd/tmpfiles-wtmpdb.conf $(DESTDIR)$(TMPFILESDIR)/wtmpdb.conf
	install -d $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 0644 logrotate/wtmpdb $(DESTDIR)$(SYSCONFDIR)/logrotate.d/wtmpdb
	install -d $(DESTDIR)$(WANTSDIR)
	ln -sf $(UNITDIR)/wtmpdbd.socket $(DESTDIR)$(WANTSDIR)/wtmpdbd.socket
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		systemctl daemon-reload && systemctl restart wtmpdbd.socket; fi
	@for db in /var/lib/wtmpdb/wtmp.db /var/log/wtmp.db; do \
		if [ -z "$(DESTDIR)" ] && [ -n "$$(find -L $$db -maxdepth 0 -perm /o=rw 2>/dev/null)" ]; then \
			echo "$$db can be opened by every user: hand it to wtmpdbd with" \
				"'$(BINDIR)/wtmpdb secure -f $$db' (see wtmpdb-secure(1))" >&2; fi; done

# Optional: make `last` run `wtmpdb last` (replaces nothing: refuses if a last exists).
install-last-link:
	@if [ -e $(DESTDIR)$(BINDIR)/last ]; then echo "$(DESTDIR)$(BINDIR)/last exists; not replacing it" >&2; exit 1; fi
	ln -s wtmpdb $(DESTDIR)$(BINDIR)/last

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/wtmpdb $(DESTDIR)$(PAMDIR)/pam_wtmpdb.so \
		$(DESTDIR)$(LIBEXECDIR)/wtmpdbd $(DESTDIR)$(MANDIR)/man8/wtmpdbd.8 \
		$(DESTDIR)$(UNITDIR)/wtmpdbd.socket $(DESTDIR)$(UNITDIR)/wtmpdbd.service \
		$(DESTDIR)$(WANTSDIR)/wtmpdbd.socket \
		$(DESTDIR)$(MANDIR)/man8/pam_wtmpdb.8 $(DESTDIR)$(MANDIR)/man1/wtmpdb*.1 \
		$(DESTDIR)$(DATADIR)/bash-completion/completions/wtmpdb \
		$(DESTDIR)$(DATADIR)/zsh/site-functions/_wtmpdb \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d/wtmpdb.fish \
		$(DESTDIR)$(LIBDIR)/libwtmpdb.so.$(LIBWTMPDB_VERSION) $(DESTDIR)$(LIBDIR)/libwtmpdb.so.0 \
		$(DESTDIR)$(LIBDIR)/libwtmpdb.so $(DESTDIR)$(INCLUDEDIR)/wtmpdb.h \
		$(DESTDIR)$(PKGCONFIGDIR)/libwtmpdb.pc $(DESTDIR)$(MANDIR)/man3/libwtmpdb.3 \
		$(DESTDIR)$(CATALOGDIR)/wtmpdb.catalog

test:
	$(CARGO) test --workspace

# Debian packages (wtmpdb, libpam-wtmpdb, libwtmpdb0, libwtmpdb-dev, wtmpdbd) built by
# dpkg-buildpackage from a copy of the tree in $(DEB_DIR)/wtmpdb (dpkg-buildpackage leaves
# its results in the parent of the source tree: $(DEB_DIR)). The copy keeps its cargo target
# directory between runs. -d: cargo and rustc come from rustup where Debian's are too old
# (the other build dependencies are checked by `dpkg-checkbuilddeps` below).
DEB_DIR ?= target/debian
deb:
	@command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || \
		{ echo "make deb needs dpkg-dev and debhelper (apt install dpkg-dev debhelper)" >&2; exit 1; }
	dpkg-checkbuilddeps -d 'debhelper-compat (= 13), pkgconf | pkg-config, libsqlite3-dev, libpam0g-dev'
	mkdir -p $(DEB_DIR)/wtmpdb
	rm -f $(DEB_DIR)/*.deb $(DEB_DIR)/*.changes $(DEB_DIR)/*.buildinfo
	tar -c --exclude=./target --exclude=./.git --exclude=./fuzz/target . | \
		(cd $(DEB_DIR)/wtmpdb && find . -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} + && tar -x)
	cd $(DEB_DIR)/wtmpdb && unset CARGO_TARGET_DIR && \
		dpkg-buildpackage -b -us -uc -d --no-sign
	@ls -1 $(DEB_DIR)/*.deb
