# Build and install the wtmpdb command, the PAM module and the daemon wtmpdbd.
#   make build
#   make install [DESTDIR=...] [PREFIX=/usr/local] [PAMDIR=<libdir>/security]

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

# The distribution's PAM module directory: where libpam itself lives, else the multiarch
# directory, else the traditional one.
PAMDIR ?= $(shell \
	d=$$(pkg-config --variable=libdir pam 2>/dev/null); \
	m=$$(gcc -print-multiarch 2>/dev/null); \
	if [ -n "$$d" ]; then echo "$$d/security"; \
	elif [ -n "$$m" ] && [ -d "/usr/lib/$$m/security" ]; then echo "/usr/lib/$$m/security"; \
	else echo /lib/security; fi)

SYSCONFDIR ?= /etc

.PHONY: all build install install-systemd install-last-link uninstall test

all: build

build:
	$(CARGO) build --release -p wtmpdb-cli -p pam_wtmpdb -p wtmpdbd

$(RELEASE)/wtmpdb $(RELEASE)/libpam_wtmpdb.so $(RELEASE)/wtmpdbd &:
	$(CARGO) build --release -p wtmpdb-cli -p pam_wtmpdb -p wtmpdbd

install: $(RELEASE)/wtmpdb $(RELEASE)/libpam_wtmpdb.so $(RELEASE)/wtmpdbd
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

# systemd units (boot/shutdown records, monthly rotation, the daemon and its socket) and
# the database directory. The daemon is not enabled: `systemctl enable --now wtmpdbd.socket`.
install-systemd:
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR)
	for u in wtmpdb-update-boot.service wtmpdb-rotate.service wtmpdb-rotate.timer \
		wtmpdbd.socket wtmpdbd.service; do \
		sed 's|@BINDIR@|$(BINDIR)|g; s|@LIBEXECDIR@|$(LIBEXECDIR)|g' systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; done
	install -m 0644 systemd/tmpfiles-wtmpdb.conf $(DESTDIR)$(TMPFILESDIR)/wtmpdb.conf
	install -d $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 0644 logrotate/wtmpdb $(DESTDIR)$(SYSCONFDIR)/logrotate.d/wtmpdb

# Optional: make `last` run `wtmpdb last` (replaces nothing: refuses if a last exists).
install-last-link:
	@if [ -e $(DESTDIR)$(BINDIR)/last ]; then echo "$(DESTDIR)$(BINDIR)/last exists; not replacing it" >&2; exit 1; fi
	ln -s wtmpdb $(DESTDIR)$(BINDIR)/last

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/wtmpdb $(DESTDIR)$(PAMDIR)/pam_wtmpdb.so \
		$(DESTDIR)$(LIBEXECDIR)/wtmpdbd $(DESTDIR)$(MANDIR)/man8/wtmpdbd.8 \
		$(DESTDIR)$(UNITDIR)/wtmpdbd.socket $(DESTDIR)$(UNITDIR)/wtmpdbd.service \
		$(DESTDIR)$(MANDIR)/man8/pam_wtmpdb.8 $(DESTDIR)$(MANDIR)/man1/wtmpdb*.1 \
		$(DESTDIR)$(DATADIR)/bash-completion/completions/wtmpdb \
		$(DESTDIR)$(DATADIR)/zsh/site-functions/_wtmpdb \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d/wtmpdb.fish

test:
	$(CARGO) test --workspace
