//! Exact decimal numbers.
//!
//! This module owns number comparison. JSON numbers are compared by their decimal value, exactly,
//! whatever their spelling (`300`, `300.0`, `3.0e2`) and magnitude: no float rounding is involved,
//! so the spec's "up to +/-5e9 with 6 decimals" holds with room to spare.

use std::cmp::Ordering;

/// Significant digits kept inline before spilling to the heap (covers every f64-sized number).
const INLINE: usize = 40;

/// Exponents are clamped here so that arithmetic on them never overflows; numbers beyond
/// 10^(10^15) are not meaningfully different for filtering.
const EXP_CLAMP: i64 = 1_000_000_000_000_000;

/// Fixed-point scale of [`Dec::fixed`]: values in units of 10^-18.
const FIXED_FRAC_DIGITS: usize = 18;

/// A decimal `(-1)^neg * 0.d1 d2 ... dn * 10^exp` with `d1 != 0` and `dn != 0`; zero has no digits.
#[derive(Clone)]
pub(crate) struct Dec {
    neg: bool,
    exp: i64,
    len: usize,
    inline: [u8; INLINE],
    heap: Vec<u8>,
    /// The same value in units of 10^-18, when it fits (|value| < 10^18, at most 18 decimals):
    /// compared against [`Dec::fixed_of_text`] without building a `Dec` per event value.
    pub fixed: Option<i128>,
}

impl std::fmt::Debug for Dec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = String::from_utf8_lossy(self.digits()).into_owned();
        write!(
            f,
            "{}0.{}e{}",
            if self.neg { "-" } else { "" },
            if d.is_empty() { "0".to_string() } else { d },
            self.exp
        )
    }
}

impl Dec {
    /// Parses a number already validated against the JSON grammar (returns None otherwise).
    pub fn parse(text: &[u8]) -> Option<Dec> {
        let mut i = 0;
        let neg = text.first() == Some(&b'-');
        if neg {
            i += 1;
        }
        let int_start = i;
        while matches!(text.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        let int = &text[int_start..i];
        if int.is_empty() {
            return None;
        }
        let mut frac: &[u8] = &[];
        if text.get(i) == Some(&b'.') {
            let s = i + 1;
            i = s;
            while matches!(text.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            frac = &text[s..i];
            if frac.is_empty() {
                return None;
            }
        }
        let mut e: i64 = 0;
        if matches!(text.get(i), Some(b'e' | b'E')) {
            i += 1;
            let eneg = match text.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let s = i;
            while let Some(c @ b'0'..=b'9') = text.get(i) {
                e = (e * 10 + i64::from(c - b'0')).min(EXP_CLAMP);
                i += 1;
            }
            if i == s {
                return None;
            }
            if eneg {
                e = -e;
            }
        }
        if i != text.len() {
            return None;
        }
        let mut d = Dec {
            neg,
            exp: 0,
            len: 0,
            inline: [0; INLINE],
            heap: Vec::new(),
            fixed: None,
        };
        // Significant digits: strip leading zeros of int++frac, then trailing zeros.
        let lead_int = int.iter().take_while(|&&c| c == b'0').count();
        let point: i64 = if lead_int < int.len() {
            for &c in &int[lead_int..] {
                d.push(c);
            }
            for &c in frac {
                d.push(c);
            }
            (int.len() - lead_int) as i64
        } else {
            let lead_frac = frac.iter().take_while(|&&c| c == b'0').count();
            for &c in &frac[lead_frac..] {
                d.push(c);
            }
            -(lead_frac as i64)
        };
        while d.len > 0 && d.digits()[d.len - 1] == b'0' {
            d.pop();
        }
        if d.len == 0 {
            d.neg = false;
            d.exp = 0;
        } else {
            d.exp = (point + e).clamp(-EXP_CLAMP, EXP_CLAMP);
        }
        d.fixed = d.to_fixed();
        Some(d)
    }

    /// The value in units of 10^-18, if it fits (see [`Dec::fixed`]).
    fn to_fixed(&self) -> Option<i128> {
        let n = self.len as i64;
        let shift = self.exp - n + FIXED_FRAC_DIGITS as i64;
        if self.exp > FIXED_FRAC_DIGITS as i64 || shift < 0 {
            return None;
        }
        let mut v: i128 = 0;
        for &c in self.digits() {
            v = v * 10 + i128::from(c - b'0');
        }
        for _ in 0..shift {
            v *= 10;
        }
        Some(if self.neg { -v } else { v })
    }

    /// A JSON number's value in units of 10^-18, for the common spellings (an optional `-`, at
    /// most 18 integer digits, at most 18 decimals, no exponent); `None` for anything else,
    /// which then goes through [`Dec::parse`].
    #[inline]
    pub fn fixed_of_text(text: &[u8]) -> Option<i128> {
        let (neg, digits) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let mut v: i128 = 0;
        let mut i = 0;
        // Digit counts are checked as they grow: a longer run would overflow `v`.
        while let Some(&c @ b'0'..=b'9') = digits.get(i) {
            if i == FIXED_FRAC_DIGITS {
                return None;
            }
            v = v * 10 + i128::from(c - b'0');
            i += 1;
        }
        if i == 0 {
            return None;
        }
        let mut frac = 0;
        if digits.get(i) == Some(&b'.') {
            i += 1;
            while let Some(&c @ b'0'..=b'9') = digits.get(i) {
                if frac == FIXED_FRAC_DIGITS {
                    return None;
                }
                v = v * 10 + i128::from(c - b'0');
                i += 1;
                frac += 1;
            }
            if frac == 0 {
                return None;
            }
        }
        if i != digits.len() {
            return None;
        }
        for _ in frac..FIXED_FRAC_DIGITS {
            v *= 10;
        }
        Some(if neg { -v } else { v })
    }

    fn push(&mut self, c: u8) {
        if self.len < INLINE {
            self.inline[self.len] = c;
        } else {
            if self.len == INLINE {
                self.heap.extend_from_slice(&self.inline);
            }
            self.heap.push(c);
        }
        self.len += 1;
    }

    fn pop(&mut self) {
        if self.len > INLINE {
            self.heap.pop();
            if self.len - 1 == INLINE {
                self.heap.clear();
            }
        }
        self.len -= 1;
    }

    fn digits(&self) -> &[u8] {
        if self.len <= INLINE {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }

    fn is_zero(&self) -> bool {
        self.len == 0
    }

    /// Exact comparison of values.
    pub fn cmp(&self, o: &Dec) -> Ordering {
        let sign = |d: &Dec| -> i8 {
            if d.is_zero() {
                0
            } else if d.neg {
                -1
            } else {
                1
            }
        };
        let (sa, sb) = (sign(self), sign(o));
        if sa != sb || sa == 0 {
            return sa.cmp(&sb);
        }
        let mag = self
            .exp
            .cmp(&o.exp)
            .then_with(|| self.digits().cmp(o.digits()));
        if sa < 0 {
            mag.reverse()
        } else {
            mag
        }
    }
}

impl PartialEq for Dec {
    fn eq(&self, o: &Dec) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn equal_spellings() {
        for (a, b) in [
            ("300", "300.0"),
            ("300", "3.0e2"),
            ("300", "3E+2"),
            ("0", "-0"),
            ("0", "0.000e5"),
            ("0.5", "5e-1"),
            ("-1.25", "-125e-2"),
            ("5000000000.000001", "5000000000000001e-6"),
        ] {
            assert!(d(a) == d(b), "{a} == {b}");
        }
    }

    #[test]
    fn ordering_is_exact() {
        let ordered = [
            "-5e9",
            "-4999999999.999999",
            "-1",
            "-0.000001",
            "0",
            "0.000001",
            "0.1",
            "0.100001",
            "1",
            "4999999999.999999",
            "5e9",
            "5000000000.000001",
            "1e400",
        ];
        for w in ordered.windows(2) {
            assert_eq!(d(w[0]).cmp(&d(w[1])), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(d(w[1]).cmp(&d(w[0])), Ordering::Greater);
        }
        // The fixed-point fast path agrees with the exact order.
        for w in ordered.windows(2) {
            if let (Some(a), Some(b)) = (Dec::fixed_of_text(w[0].as_bytes()), d(w[1]).fixed) {
                assert!(a < b, "fixed {} < {}", w[0], w[1]);
            }
        }
        // Long mantissas spill to the heap and still compare exactly.
        let long_a = format!("1.{}1", "0".repeat(60));
        let long_b = format!("1.{}2", "0".repeat(60));
        assert_eq!(d(&long_a).cmp(&d(&long_b)), Ordering::Less);
        assert!(d(&long_a) == d(&format!("{long_a}000")));
    }

    #[test]
    fn fixed_point_is_exact_where_it_applies() {
        for (text, want) in [
            ("0", Some(0)),
            ("-0", Some(0)),
            ("300", Some(300 * 10i128.pow(18))),
            ("-1.25", Some(-125 * 10i128.pow(16))),
            ("0.000000000000000001", Some(1)),
            (
                "999999999999999999",
                Some(999_999_999_999_999_999 * 10i128.pow(18)),
            ),
            ("1000000000000000000", None),
            ("0.0000000000000000001", None),
            ("3e2", None),
            ("1.", None),
            ("-", None),
        ] {
            assert_eq!(Dec::fixed_of_text(text.as_bytes()), want, "{text}");
            if let (Some(w), Some(dec)) = (want, Dec::parse(text.as_bytes())) {
                assert_eq!(dec.fixed, Some(w), "{text} parsed");
            }
        }
        // Exponent spellings get the fixed form from the normalised digits.
        assert_eq!(d("3e2").fixed, Some(300 * 10i128.pow(18)));
        assert_eq!(d("5e9").fixed, Some(5_000_000_000 * 10i128.pow(18)));
        assert_eq!(d("1e18").fixed, None);
        assert_eq!(d("1e400").fixed, None);
    }

    /// A JSON number's text: sign, up to 20 integer digits, up to 20 decimals, maybe an exponent.
    fn number_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        (
            any::<bool>(),
            "(0|[1-9][0-9]{0,19})",
            proptest::option::of("[0-9]{1,20}"),
            proptest::option::of(-25i32..25),
        )
            .prop_map(|(neg, int, frac, exp)| {
                let mut t = String::new();
                if neg {
                    t.push('-');
                }
                t.push_str(&int);
                if let Some(f) = frac {
                    t.push('.');
                    t.push_str(&f);
                }
                if let Some(e) = exp {
                    t.push_str(&format!("e{e}"));
                }
                t
            })
    }

    proptest::proptest! {
        /// Wherever both sides have a fixed-point value, comparing those agrees with the exact
        /// decimal comparison, and a text's fast value is its parsed value's.
        #[test]
        fn fixed_point_agrees_with_exact_comparison(a in number_text(), b in number_text()) {
            let (da, db) = (d(&a), d(&b));
            if let Some(fa) = Dec::fixed_of_text(a.as_bytes()) {
                proptest::prop_assert_eq!(Some(fa), da.fixed, "{}", a);
            }
            if let (Some(fa), Some(fb)) = (da.fixed, db.fixed) {
                proptest::prop_assert_eq!(fa.cmp(&fb), da.cmp(&db), "{} vs {}", a, b);
            }
        }
    }

    /// Found by `cargo fuzz`: a 47-digit integer overflowed the fixed-point accumulator.
    #[test]
    fn fuzz_long_digit_runs_do_not_overflow_fixed_point() {
        let long_int = "9".repeat(47);
        let long_frac = format!("0.{}", "9".repeat(60));
        let max = format!("{}.{}", "9".repeat(18), "9".repeat(18));
        assert_eq!(Dec::fixed_of_text(long_int.as_bytes()), None);
        assert_eq!(Dec::fixed_of_text(long_frac.as_bytes()), None);
        assert_eq!(Dec::fixed_of_text(format!("-{long_int}").as_bytes()), None);
        assert_eq!(Dec::fixed_of_text(max.as_bytes()), Some(10i128.pow(36) - 1));
        // And they still compare exactly through the slow path.
        assert_eq!(d(&long_int).cmp(&d(&max)), Ordering::Greater);
        assert_eq!(d(&long_frac).cmp(&d("1")), Ordering::Less);
    }

    #[test]
    fn rejects_non_numbers_and_clamps_exponents() {
        assert!(Dec::parse(b"1.").is_none());
        assert!(Dec::parse(b"abc").is_none());
        assert!(Dec::parse(b"1e").is_none());
        assert_eq!(
            d("1e99999999999999999999999").cmp(&d("1e999999999999")),
            Ordering::Greater
        );
    }
}
