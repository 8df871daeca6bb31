import pytest

from robact_bench.registry import Registry, UnknownNameError, check_kwargs


def test_register_get_alias_and_list():
    reg: Registry[int] = Registry("thing")
    reg.add("alpha_one", 1, aliases=("a1",))
    reg.add("beta", 2)
    assert reg.get("alpha_one") == 1
    assert reg.get("A1") == 1  # case-insensitive, alias
    assert reg.get("alpha-one") == 1  # dashes are underscores
    assert reg.list() == ["alpha_one", "beta"]
    assert reg.list("b*") == ["beta"]
    assert "a1" in reg and "gamma" not in reg and len(reg) == 2


def test_unknown_name_lists_close_matches():
    reg: Registry[int] = Registry("activation")
    reg.add("brelu", 1)
    reg.add("vbrelu", 2)
    with pytest.raises(KeyError) as info:
        reg.get("brelo")
    msg = str(info.value)
    assert "unknown activation 'brelo'" in msg and "'brelu'" in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, UnknownNameError)


def test_duplicate_registration_is_an_error():
    reg: Registry[int] = Registry("thing")
    reg.add("x", 1, aliases=("y",))
    with pytest.raises(ValueError, match="already registered"):
        reg.add("x", 2)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("z", 3, aliases=("y",))


def test_check_kwargs_names_the_bad_keyword():
    def f(a, *, b=1):
        return a + b

    check_kwargs("fn", "f", f, {"b": 2})
    with pytest.raises(TypeError, match=r"fn 'f' does not take c; it takes: a, b"):
        check_kwargs("fn", "f", f, {"c": 2})


def test_remove_unregisters_the_name_and_its_aliases():
    reg: Registry[int] = Registry("thing")
    reg.add("x", 1, aliases=("y",))
    reg.add("z", 2)
    assert reg.remove("Y") == 1
    assert reg.list() == ["z"] and "x" not in reg and "y" not in reg
    reg.add("y", 3)  # the alias is free again
    assert reg.get("y") == 3
    with pytest.raises(UnknownNameError, match="unknown thing 'x'"):
        reg.remove("x")
