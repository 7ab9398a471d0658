//! A bounded mutation fuzzer that runs with the normal tests (stable Rust, no coverage
//! guidance): thousands of seeded mutations of valid definitions never make the parser
//! panic, and every rejection names a line and column. The coverage-guided target is
//! `fuzz/fuzz_targets/parse_service.rs` (see fuzz/README.md).
#![allow(clippy::unwrap_used)]

mod common;

/// Fragments a mutation splices in: TOML syntax and values near the validators' edges.
const TOKENS: &[&str] = &[
    "[[components]]\n",
    "[[components.routes]]\n",
    "[build.images]\n",
    "=",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "#",
    "0",
    "-1",
    "65536",
    "70000",
    "1e9",
    "true",
    "\"unikernel\"",
    "\"l7\"",
    "name = \"x\"\n",
    "port = 0\n",
    "memory_mb = 0\n",
    "runtime = \"vm\"\n",
    "\u{0}",
    "é",
    "\\u0000",
    "\"\"\"",
    "..",
    "/",
    "$PORT",
    "A=B",
    "=x",
];

/// xorshift64*: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }
}

fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            1 if !bytes.is_empty() => {
                let end = (at + 1 + rng.below(12)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            2 if at < bytes.len() => bytes[at] = u8::try_from(rng.below(128)).unwrap(),
            _ => {
                let lines: Vec<&str> = text.lines().collect();
                let line = lines[rng.below(lines.len())];
                bytes.splice(at..at, format!("\n{line}\n").into_bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_definitions_never_panic_and_every_rejection_is_located() {
    let corpus = [
        common::EXAMPLE,
        "name = \"a\"\nnode = \"n\"\n[[components]]\nname = \"b\"\nimage = \"i\"\n",
        "name = \"vm\"\nnode = \"n\"\nruntime = \"unikernel\"\n[[components]]\nname = \"app\"\n\
         image = \"i\"\nmemory_mb = 64\n[[components.routes]]\nport = 80\n",
    ];
    let iterations: u64 = std::env::var("MCP_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    let (mut accepted, mut rejected) = (0, 0);
    for seed in 1..=iterations {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let text = mutate(corpus[rng.below(corpus.len())], &mut rng);
        let result = std::panic::catch_unwind(|| servicedef::parse_str("fuzz.toml", &text));
        let Ok(result) = result else {
            panic!("seed {seed}: the parser panicked on {text:?}");
        };
        match result {
            Ok(service) => {
                accepted += 1;
                // What parses also passes the wire-side validation the agent runs.
                assert!(service.validate().is_ok(), "seed {seed}: {text:?}");
            }
            Err(e) => {
                rejected += 1;
                assert!(
                    e.line.is_some() && e.column.is_some(),
                    "seed {seed}: unlocated {e} for {text:?}"
                );
            }
        }
    }
    assert!(
        accepted > 0 && rejected > 0,
        "the mutations reach both outcomes"
    );
}
