# Build and install the wtmpdb command and the PAM module.
#   make build
#   make install [DESTDIR=...] [PREFIX=/usr/local] [PAMDIR=<libdir>/security]

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
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

.PHONY: all build install uninstall test

all: build

build:
	$(CARGO) build --release -p wtmpdb -p pam_wtmpdb

$(RELEASE)/wtmpdb $(RELEASE)/libpam_wtmpdb.so &:
	$(CARGO) build --release -p wtmpdb -p pam_wtmpdb

install: $(RELEASE)/wtmpdb $(RELEASE)/libpam_wtmpdb.so
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PAMDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(RELEASE)/wtmpdb $(DESTDIR)$(BINDIR)/wtmpdb
	install -m 0644 $(RELEASE)/libpam_wtmpdb.so $(DESTDIR)$(PAMDIR)/pam_wtmpdb.so
	install -m 0644 pam/pam_wtmpdb.8 $(DESTDIR)$(MANDIR)/man8/pam_wtmpdb.8

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/wtmpdb $(DESTDIR)$(PAMDIR)/pam_wtmpdb.so \
		$(DESTDIR)$(MANDIR)/man8/pam_wtmpdb.8

test:
	$(CARGO) test --workspace
