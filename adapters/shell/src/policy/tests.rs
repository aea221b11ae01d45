use super::*;

fn policy(mode: Mode, shell: bool) -> Policy {
    Policy {
        mode,
        allow: [
            "ls", "echo", "env", "timeout", "find", "cat", "nice", "xargs", "sh", "sort", "uniq",
        ]
        .map(String::from)
        .to_vec(),
        deny: ["rm", "dd"].map(String::from).to_vec(),
        allow_shell_syntax: shell,
        path: vec!["/usr/bin".into(), "/bin".into()],
    }
}

fn refusal(p: &Policy, line: &str) -> Refusal {
    p.judge(line, false, Path::new("/"))
        .map(|(plan, _)| plan)
        .unwrap_err()
}

#[test]
fn allowlist_runs_only_what_is_listed() {
    let p = policy(Mode::Allowlist, false);
    let (plan, v) = p.judge("ls -la", false, Path::new("/")).unwrap();
    assert_eq!(
        plan,
        Plan::Argv {
            program: p.lookup("ls").unwrap(),
            argv: vec!["ls".into(), "-la".into()],
            env: vec![]
        }
    );
    let (plan, _) = p.judge("LC_ALL=C ls", false, Path::new("/")).unwrap();
    assert_eq!(
        plan,
        Plan::Argv {
            program: p.lookup("ls").unwrap(),
            argv: vec!["ls".into()],
            env: vec![("LC_ALL".into(), "C".into())]
        }
    );
    assert_eq!(v.programs, ["ls"]);
    assert_eq!(refusal(&p, "uname -a"), Refusal::NotAllowed("uname".into()));
    assert_eq!(refusal(&p, "rm -rf /"), Refusal::Denied("rm".into()));
    assert!(matches!(
        refusal(&p, "no-such-program-xyz"),
        Refusal::NotFound(..)
    ));
}

#[test]
fn bypass_attempts_are_refused() {
    let p = policy(Mode::Allowlist, false);
    assert!(matches!(
        refusal(&p, "ls $(rm -rf x)"),
        Refusal::ShellSyntax(_)
    ));
    assert!(matches!(refusal(&p, "ls; rm x"), Refusal::ShellSyntax(_)));
    assert!(matches!(refusal(&p, "ls `rm x`"), Refusal::ShellSyntax(_)));
    assert_eq!(refusal(&p, "env X=1 rm x"), Refusal::Denied("rm".into()));
    assert_eq!(
        refusal(&p, "env -u HOME rm x"),
        Refusal::Denied("rm".into())
    );
    assert_eq!(
        refusal(&p, "env PATH=/tmp ls"),
        Refusal::Assignment("PATH".into())
    );
    assert_eq!(
        refusal(&p, "env LD_PRELOAD=/x.so ls"),
        Refusal::Assignment("LD_PRELOAD".into())
    );
    assert!(matches!(
        refusal(&p, "env -S 'rm x'"),
        Refusal::Launcher(..)
    ));
    assert_eq!(refusal(&p, "timeout 5 rm x"), Refusal::Denied("rm".into()));
    assert_eq!(
        refusal(&p, "nice -n 5 uname"),
        Refusal::NotAllowed("uname".into())
    );
    assert_eq!(
        refusal(&p, "find . -exec rm {} \\;"),
        Refusal::Denied("rm".into())
    );
    assert_eq!(refusal(&p, "xargs rm"), Refusal::Denied("rm".into()));
    assert_eq!(refusal(&p, "/bin/rm -rf x"), Refusal::Denied("rm".into()));
    assert_eq!(
        refusal(&p, "/usr/bin/../bin/rm x"),
        Refusal::Denied("rm".into())
    );
    assert!(matches!(
        refusal(&p, "sh -c 'rm x'"),
        Refusal::ShellSyntax(_)
    ));
    assert!(matches!(refusal(&p, "sh script.sh"), Refusal::Opaque(..)));
    assert_eq!(refusal(&p, "sudo ls"), Refusal::Privileged("sudo".into()));
}

#[test]
fn a_renamed_program_is_not_the_one_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("ls");
    std::os::unix::fs::symlink(std::fs::canonicalize("/bin/sleep").unwrap(), &fake).unwrap();
    let p = policy(Mode::Allowlist, false);
    let e = refusal(&p, fake.to_str().unwrap());
    assert!(matches!(e, Refusal::Impostor { .. }), "{e}");
    assert!(
        e.to_string().contains("is not the 'ls' found on PATH"),
        "{e}"
    );
    // The real one by path is fine.
    let real = p.lookup("ls").unwrap();
    assert!(
        p.judge(real.to_str().unwrap(), false, Path::new("/"))
            .is_ok()
    );
}

#[test]
fn shell_lines_are_judged_program_by_program() {
    let p = policy(Mode::Allowlist, true);
    let (plan, v) = p
        .judge("ls | sort > out.txt; echo $(cat x)", false, Path::new("/"))
        .unwrap();
    assert!(matches!(plan, Plan::Shell(_)));
    // echo is a builtin of sh here: it starts no program.
    assert_eq!(v.programs, ["ls", "sort", "cat"]);
    assert_eq!(refusal(&p, "ls; rm x"), Refusal::Denied("rm".into()));
    assert_eq!(refusal(&p, "echo $(rm x)"), Refusal::Denied("rm".into()));
    assert_eq!(
        refusal(&p, "ls | sh -c 'dd if=x'"),
        Refusal::Denied("dd".into())
    );
    assert_eq!(
        refusal(&p, "PATH=/tmp ls"),
        Refusal::Assignment("PATH".into())
    );
    assert!(matches!(
        refusal(&p, "ls; eval 'rm x'"),
        Refusal::Opaque(..)
    ));
    assert!(matches!(refusal(&p, "$X"), Refusal::Dynamic(_)));
    assert!(matches!(refusal(&p, "ls | uname"), Refusal::NotAllowed(_)));
}

#[test]
fn denylist_and_approval_modes() {
    let p = policy(Mode::Denylist, false);
    assert!(p.judge("uname -a", false, Path::new("/")).is_ok());
    assert_eq!(refusal(&p, "env rm x"), Refusal::Denied("rm".into()));
    let p = policy(Mode::Approval, false);
    assert!(p.judge("ls", false, Path::new("/")).is_ok());
    assert_eq!(refusal(&p, "uname"), Refusal::NeedsApproval("uname".into()));
    let (_, v) = p.judge("uname", true, Path::new("/")).unwrap();
    assert_eq!(v.approved, ["uname"]);
    // Approval never overrides the deny list.
    assert_eq!(
        p.judge("rm x", true, Path::new("/")).unwrap_err(),
        Refusal::Denied("rm".into())
    );
}

#[test]
fn the_issues_bypasses_are_refused() {
    let p = policy(Mode::Allowlist, false);
    for line in [
        "env -vSid",
        "env \"-iSid\"",
        "env --sp=id",
        "env --split=id",
    ] {
        let e = refusal(&p, line);
        assert!(matches!(e, Refusal::Launcher(..)), "{line}: {e}");
        assert!(e.to_string().contains("env -S splits"), "{line}: {e}");
    }
    // `--un` is `--unset`, which takes `ls`: the program is `id`.
    assert_eq!(
        refusal(&p, "env --un ls id"),
        Refusal::NotAllowed("id".into())
    );
    assert_eq!(refusal(&p, "env -uls id"), Refusal::NotAllowed("id".into()));
    let e = refusal(&p, "sort -S 4k -T . --compress-program=sh s.txt");
    assert!(matches!(e, Refusal::Option(..)), "{e}");
    assert!(e.to_string().contains("--compress-program"), "{e}");
    for line in [
        "sort --comp sh s.txt",
        "sort -o x y",
        "find . -fprint0 out",
        "uniq a b",
    ] {
        let e = refusal(&p, line);
        assert!(
            matches!(e, Refusal::Option(..) | Refusal::Opaque(..)),
            "{line}: {e}"
        );
    }
    // Ordinary uses still run.
    for line in [
        "env -i LC_ALL=C ls",
        "sort -k2 -n data.csv",
        "timeout 5 ls",
        "uniq -c a",
    ] {
        assert!(p.judge(line, false, Path::new("/")).is_ok(), "{line}");
    }
}

/// Marker programs on a PATH of their own: each appends its name to
/// `ran` when it runs.
fn markers(dir: &Path) -> Policy {
    use std::os::unix::fs::PermissionsExt;
    for m in ["p1", "p2", "p3"] {
        let f = dir.join(m);
        std::fs::write(
            &f,
            format!("#!/bin/sh\necho {m} >> {}\n", dir.join("ran").display()),
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    Policy {
        mode: Mode::Allowlist,
        allow: ["env", "p1", "p2", "p3"].map(String::from).to_vec(),
        deny: vec![],
        allow_shell_syntax: false,
        path: vec![dir.to_path_buf(), "/usr/bin".into(), "/bin".into()],
    }
}

/// Runs the real GNU env with `args`; the marker it started, if any.
fn real_env(dir: &Path, args: &[String]) -> Option<String> {
    let _ = std::fs::remove_file(dir.join("ran"));
    let status = std::process::Command::new("/usr/bin/env")
        .args(args)
        .env_clear()
        .env("PATH", dir)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("GNU env (coreutils) is needed for this test");
    let _ = status;
    std::fs::read_to_string(dir.join("ran"))
        .ok()
        .and_then(|s| s.lines().next().map(String::from))
}

/// What the policy says `env args` runs: Ok(the marker), Ok(None) for
/// nothing, Err for a refusal.
fn judged_env(p: &Policy, args: &[String]) -> Result<Option<String>, Refusal> {
    let mut argv = vec!["env".to_string()];
    argv.extend(args.iter().cloned());
    let j = Judging {
        approve: false,
        cwd: Some(Path::new("/")),
    };
    let mut v = Verdict::default();
    p.check_argv(&argv, &j, &mut v, 0)?;
    Ok(v.programs.get(1).cloned())
}

fn env_word() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let longs = [
        "ignore-environment",
        "null",
        "unset",
        "chdir",
        "split-string",
        "block-signal",
        "default-signal",
        "ignore-signal",
        "list-signal-handling",
        "debug",
        "help",
        "version",
    ];
    prop_oneof![
        // A cluster of short options, some unknown.
        proptest::collection::vec(
            proptest::sample::select(vec!['i', '0', 'u', 'C', 'S', 'v', 'x']),
            1..4
        )
        .prop_map(|cs| format!("-{}", cs.into_iter().collect::<String>())),
        // A long option abbreviated anywhere, with or without a value.
        (
            proptest::sample::select(longs.to_vec()),
            1usize..20,
            proptest::option::of(proptest::sample::select(vec!["p1", "p2", "INT"]))
        )
            .prop_map(|(l, n, v)| {
                let name = &l[..n.min(l.len())];
                match v {
                    Some(v) => format!("--{name}={v}"),
                    None => format!("--{name}"),
                }
            }),
        Just("-".to_string()),
        Just("--".to_string()),
        Just("A=1".to_string()),
        proptest::sample::select(vec!["p1", "p2", "p3", "INT"]).prop_map(String::from),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    /// Whatever the spelling, the program GNU env really starts is the
    /// one the policy judged (or the policy refused the line).
    #[test]
    fn env_runs_only_what_the_policy_judged(args in proptest::collection::vec(env_word(), 0..6)) {
        let dir = tempfile::tempdir().unwrap();
        let p = markers(dir.path());
        let ran = real_env(dir.path(), &args);
        let judged = judged_env(&p, &args);
        if let (Some(ran), Ok(judged)) = (ran, &judged) {
            // A refusal is always safe; a pass must name what ran.
            proptest::prop_assert_eq!(
                judged.clone(),
                Some(ran.clone()),
                "env {:?} ran {} but the policy judged {:?}",
                args,
                ran,
                judged
            );
        }
    }
}

#[test]
fn the_env_oracle_is_not_vacuous() {
    // The property above only bites if real runs happen: these do.
    let dir = tempfile::tempdir().unwrap();
    let p = markers(dir.path());
    for (args, runs) in [
        ("--un p1 p2", "p2"),
        ("-u p1 p2", "p2"),
        ("-- --i=p1 p1", "p1"),
        ("-- p1", "p1"),
        ("A=1 B=2 p3", "p3"),
        ("-v p2", "p2"),
    ] {
        let args: Vec<String> = args.split(' ').map(String::from).collect();
        assert_eq!(
            real_env(dir.path(), &args).as_deref(),
            Some(runs),
            "{args:?}"
        );
        assert_eq!(
            judged_env(&p, &args).unwrap().as_deref(),
            Some(runs),
            "{args:?}"
        );
    }
}

#[test]
fn sort_never_runs_a_compress_program_the_policy_passed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("zz");
    std::fs::write(
        &marker,
        format!(
            "#!/bin/sh\necho ran >> {}\nexec cat\n",
            dir.path().join("ran").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data: String = (0..20_000)
        .map(|i| format!("{}\n", (i * 7919) % 10_007))
        .collect();
    std::fs::write(dir.path().join("in.txt"), data).unwrap();
    let p = policy(Mode::Allowlist, false);
    let mut ran_somewhere = false;
    for spelling in [
        "--compress-program=zz",
        "--compress-program zz",
        "--compress=zz",
        "--comp zz",
        "--compress-p=zz",
        "--co=zz",
    ] {
        let line = format!("sort -S 16k -T . {spelling} in.txt");
        let words: Vec<String> = line.split(' ').map(String::from).collect();
        let _ = std::fs::remove_file(dir.path().join("ran"));
        let o = std::process::Command::new("sort")
            .args(&words[1..])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let ran = dir.path().join("ran").exists();
        ran_somewhere |= ran;
        let judged = p.judge(&line, false, Path::new("/"));
        assert!(
            !ran || judged.is_err(),
            "{line}: sort ran zz ({o:?}) but the policy passed it"
        );
    }
    assert!(
        ran_somewhere,
        "sort never used the compress program: the test proves nothing"
    );
}
