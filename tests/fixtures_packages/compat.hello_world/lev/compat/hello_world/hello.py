"""
My first tool on Leviathan
Homepage: -
GitHub: -
Type: IMAGE-BASED
Version: v1.0.0
"""
import levrt
from levrt import Cr, ctx, lev, remote, annot
from levrt.annot.cats import Attck, BlackArch

IMAGE = "localhost/lev-base:bookworm"


@annot.meta(
    desc="Hello",
    params=[annot.Param("who", "person name")],
    cats=[Attck.Reconnaissance],
)
def hello(who: str = "world") -> Cr:
    """
    Hello World's first tool mode
    ```
    await hello("world")
    ```
    """
    @levrt.remote
    def entry():
        ctx.set(msg=f"Hello, {who}!")

    return Cr(IMAGE, entry=entry())


@annot.meta(
    desc="Hi",
    params=[annot.Param("who", "person name")],
    cats=[Attck.Reconnaissance],
)
def hi(who: str = "world") -> Cr:
    """
    The second tool mode of Hello World
    ```
    await hi("world")
    ```
    """
    @remote
    def entry():
        # The API page of levrt.lev stores data through lev, the same object as ctx.
        lev.set(msg=f"Hi, {who}!")

    # The @remote function itself, not called: a form the Cr page shows.
    return Cr(IMAGE, "compat/hello_world.hi@1.0", entry=entry)


@annot.meta(
    desc="exp",
    params=[annot.Param("length", "digits after the point", holder="9")],
    cats={Attck: [Attck.Reconnaissance], BlackArch: [BlackArch.Misc]},
)
def exp(length: int = 9) -> Cr:
    """
    e to the given number of digits
    ```
    await exp(9)
    ```
    """
    @remote
    def entry(length):
        import math
        ctx.update({"msg": f"{math.e:.{length}f}"})

    return Cr(IMAGE, "compat/hello_world.exp@1.0", entry=entry(length))


__lev__ = annot.meta([hello, hi, exp],
                     desc = "hello world", # name of tool
                     cats = {
                        Attck: [Attck.Reconnaissance] # ATT&CK
                     },
                     tags = ["hello", "demo"])
