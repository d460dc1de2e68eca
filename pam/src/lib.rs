//! PAM session module: placeholder until the module lands.
