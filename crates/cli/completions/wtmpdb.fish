# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_wtmpdb_global_optspecs
    string join \n v/version h/help
end

function __fish_wtmpdb_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_wtmpdb_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_wtmpdb_using_subcommand
    set -l cmd (__fish_wtmpdb_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -s v -l version -d 'Print version number and exit'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "last" -d 'Show a listing of last logged in users'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "lastb" -d 'Show a listing of failed login attempts (root only)'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "who" -d 'Show who is logged in now'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "users" -d 'Print the names of the users logged in now'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "lastlog" -d 'Show the most recent login of every user'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "boot" -d 'Write a boot entry (at the kernel\'s boot time)'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "boottime" -d 'Print the time of the last system boot'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "shutdown" -d 'Write the shutdown time into the current boot entry'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "rotate" -d 'Move entries older than DAYS days into DIR/NAME_YYYYMMDD.db; the running boot and its open sessions stay'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "export" -d 'Print every record as one JSON line, or only what happened since the last run'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "secure" -d 'Hand the database to wtmpdbd: make it and its side files root\'s alone (0600)'
complete -c wtmpdb -n "__fish_wtmpdb_needs_command" -f -a "import" -d 'Import legacy wtmp files (importing a file again adds only what is missing)'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s n -l limit -d 'Display only the first N entries (also -N, e.g. -5; 0 = all)' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s p -l present -d 'Display who was present at TIME' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s s -l since -d 'Display who was logged in after TIME' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s t -l until -d 'Display who was logged in until TIME' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -l time-format -d 'Display timestamps in FORMAT: notime, short, full or iso' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s a -l hostlast -d 'Display hostnames as last entry'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s d -l dns -d 'Translate IP addresses into a hostname'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s F -l fulltimes -d 'Display full times and dates'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s i -l ip -d 'Translate hostnames to IP addresses'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s j -l json -d 'Generate JSON output'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s R -l nohostname -d 'Don\'t display hostname'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s S -l service -d 'Display PAM service used to login'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s w -l fullnames -d 'Display full IP addresses and user and domain names'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s x -l system -d 'Display system shutdown entries'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand last" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastb" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastb" -s n -l limit -d 'Display only the first N entries (also -N, e.g. -5; 0 = all)' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastb" -s s -l since -d 'Display the attempts after TIME' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastb" -s t -l until -d 'Display the attempts until TIME' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastb" -l time-format -d 'Display timestamps in FORMAT: notime, short, full or iso' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastb" -s F -l fulltimes -d 'Display full times and dates'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastb" -s j -l json -d 'Generate JSON output'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastb" -s S -l service -d 'Display PAM service used to login'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastb" -s w -l fullnames -d 'Display full IP addresses and user and domain names'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastb" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand who" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand who" -l logind -d 'Read logind\'s sessions from DIR [default: /run/systemd/sessions, where systemd runs]' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand who" -s H -l heading -d 'Print a line of column headings'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand who" -s q -l count -d 'All login names and number of users logged on'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand who" -s u -l users -d 'List users logged in, with idle time and PID'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand who" -s j -l json -d 'Generate JSON output'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand who" -l no-logind -d 'Show only the sessions of the database, without logind\'s'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand who" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand users" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand users" -l logind -d 'Read logind\'s sessions from DIR [default: /run/systemd/sessions, where systemd runs]' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand users" -l no-logind -d 'Show only the sessions of the database, without logind\'s'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand users" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastlog" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastlog" -s u -l user -d 'Print the most recent login of USER only' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastlog" -s b -l before -d 'Print only logins older than DAYS days' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastlog" -s t -l time -d 'Print only logins more recent than DAYS days' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastlog" -l lastlog2 -d 'Read util-linux\'s lastlog2 database FILE instead of the wtmpdb database' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastlog" -s a -l all -d 'Print every account of the passwd database, "**Never logged in**" for those without a login'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastlog" -s j -l json -d 'Generate JSON output'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand lastlog" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand boot" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand boot" -s q -l quiet -d 'Print no informational messages'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand boot" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand boottime" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand boottime" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand shutdown" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand shutdown" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand rotate" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand rotate" -s d -l days -d 'Export all entries which are older than DAYS days' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand rotate" -l keep -d 'Keep the COUNT newest archives of FILE and delete older ones, as logrotate\'s `rotate COUNT` does; 0 keeps none: old entries are deleted instead of archived [default: keep every archive]' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand rotate" -l failed-days -d 'Forget failed login attempts older than DAYS days (0: any age)' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand rotate" -l failed-max -d 'Keep only the COUNT newest failed login attempts (0: any number)' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand rotate" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand export" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand export" -l format -d 'json: our fields, exact values; ecs: Elastic Common Schema' -r -f -a "json\t''
ecs\t''"
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand export" -l cursor -d 'Remember in FILE where the export stopped, and start there: each record once, across runs and a rotate' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand export" -s F -l follow -d 'Keep running, printing the records as they are committed'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand export" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand secure" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand secure" -l group -d 'Let GROUP read the files (0640), as wtmpdbd --readers GROUP does [default: root alone]' -r
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand secure" -s h -l help -d 'Print help'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand import" -s f -l file -d 'Use FILE as wtmpdb database [default: /var/lib/wtmpdb/wtmp.db, or wtmpdbd when it answers: see wtmpdb(1)]; `varlink`: through wtmpdbd (every command but import and secure)' -r -F
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand import" -l btmp -d 'The files are legacy btmp files: import their failed logins into FILE-failed (see lastb)'
complete -c wtmpdb -n "__fish_wtmpdb_using_subcommand import" -s h -l help -d 'Print help'
