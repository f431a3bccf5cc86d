"""app.memo: what a request's content gives, kept within a budget, keyed by the content."""

from app.memo import Memo, content_key


def test_values_are_kept_within_the_budget_and_forgotten_all_at_once():
    memo = Memo(80)
    for i in range(8):
        memo.put(i, f"value {i}", 10)
    assert [memo.get(i) for i in range(8)] == [f"value {i}" for i in range(8)] and memo.held == 80
    memo.put(8, "value 8", 10)  # past the budget: everything before it forgotten
    assert memo.get(0) is None and memo.get(8) == "value 8" and memo.held == 10
    memo.put("large", "never kept", 11)  # more than an eighth of the budget
    assert memo.get("large") is None and memo.held == 10


def test_content_keys_are_equal_only_for_equal_json_values():
    assert content_key({"a": [1, "x", None]}) == content_key({"a": [1, "x", None]})
    values = [1, 1.0, True, "1", [1], {"a": 1}, {"b": 1}, {"a": 1, "b": 2}, {"b": 2, "a": 1}, None, [], {}]
    assert len({content_key(v) for v in values}) == len(values)


def test_kept_makes_a_value_once_and_keeps_nothing_that_raised():
    memo, made = Memo(80), []

    def make(value):
        made.append(value)
        return value

    assert memo.kept("a", lambda: make(1), 10) == 1 and memo.kept("a", lambda: make(2), 10) == 1
    assert made == [1] and memo.held == 10

    def refuse():
        raise ValueError("refused")

    for _ in range(2):
        try:
            memo.kept("b", refuse, 10)
        except ValueError:
            pass
    assert memo.get("b") is None and memo.held == 10
