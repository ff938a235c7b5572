from transpiler.cli.main import run

run()
