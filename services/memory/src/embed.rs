//! The built-in local embedding, so semantic search works offline and with
//! no provider configured: signed feature hashing of lower-cased words
//! (weight 1) and of their character trigrams with word-boundary marks
//! (weight 0.5) into 384 dimensions, L2-normalised; similarity is the dot
//! product. It is lexical: it finds paraphrases that share words or word
//! stems ("prefers dark roast" ~ "preferred roast"), not ones that share
//! only meaning ("likes espresso" ~ "favourite coffee"); a provider's
//! embeddings endpoint does that better once the LLM router is in.

pub const DIM: usize = 384;

fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn add(v: &mut [f32], h: u64, w: f32) {
    let i = (h % DIM as u64) as usize;
    let sign = if (h >> 63) == 1 { 1.0 } else { -1.0 };
    v[i] += sign * w;
}

/// The embedding of `text`: a unit vector, or all zeros for text with no
/// word in it.
pub fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    let lower = text.to_lowercase();
    for word in lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        add(&mut v, fnv1a(word.bytes()), 1.0);
        let marked: Vec<char> = std::iter::once('#')
            .chain(word.chars())
            .chain(std::iter::once('#'))
            .collect();
        for tri in marked.windows(3) {
            let mut buf = [0u8; 12];
            let mut n = 0;
            for c in tri {
                n += c.encode_utf8(&mut buf[n..]).len();
            }
            add(&mut v, fnv1a(buf[..n].iter().copied().chain([0xFF])), 0.5);
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Dot product with eight independent accumulators, so the compiler can
/// keep them in vector registers (a single running sum is a dependency
/// chain it may not reorder).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector of `dim` components; `None` when the blob is not one.
pub fn from_bytes(b: &[u8], dim: usize) -> Option<Vec<f32>> {
    if dim == 0 || b.len() != dim * 4 {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_vectors_and_lexical_similarity() {
        let a = embed("The user prefers dark roast coffee");
        assert!((dot(&a, &a) - 1.0).abs() < 1e-5);
        let near = embed("preferred coffee: a dark roast");
        let far = embed("Deploy the staging server on Friday");
        assert!(dot(&a, &near) > 0.4, "{}", dot(&a, &near));
        assert!(dot(&a, &far) < 0.15, "{}", dot(&a, &far));
        assert!(dot(&a, &near) > dot(&a, &far) + 0.3);
        assert!(embed("  ,;  ").iter().all(|x| *x == 0.0));
        assert_eq!(from_bytes(&to_bytes(&a), DIM).unwrap(), a);
        assert_eq!(from_bytes(&to_bytes(&a), 12), None);
        // The lane-split dot product equals the plain one (up to rounding),
        // also for lengths that are not a multiple of 8.
        for n in [0, 1, 7, 8, 9, 384] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let y: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = x.iter().zip(&y).map(|(p, q)| p * q).sum();
            assert!((dot(&x, &y) - plain).abs() < 1e-4, "n={n}");
        }
        // Non-ASCII words embed too.
        assert!(dot(&embed("東京の天気"), &embed("東京の天気は晴れ")) > 0.3);
    }
}
