from mlff.so3.layout import lm_index, m_major_index, m_major_sizes, truncated_index


def test_m_major_order_and_sizes():
    idx = m_major_index(3, 2).tolist()
    assert idx[:4] == [lm_index(l, 0) for l in range(4)]
    assert idx[4:7] == [lm_index(l, 1) for l in (1, 2, 3)]
    assert idx[7:10] == [lm_index(l, -1) for l in (1, 2, 3)]
    assert idx[10:] == [lm_index(2, 2), lm_index(3, 2), lm_index(2, -2), lm_index(3, -2)]
    assert m_major_sizes(3, 2) == [4, 3, 3, 2, 2] and sum(m_major_sizes(3, 2)) == len(idx)
    # m-major is a permutation of the truncated set
    assert sorted(idx) == truncated_index(3, 2).tolist()
    assert sorted(m_major_index(4, 4).tolist()) == list(range(25))
